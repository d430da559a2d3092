//! Signal models: what a terminal's sensors would measure at a given time.
//!
//! Every signal is a pure function of the time, the scenario's seed and the terminal's
//! parameters, so a simulation is reproducible and a restarted simulator continues the same
//! curves. Noise comes from a hash of (seed, terminal, signal, second), not from a stream.

use std::f64::consts::PI;

/// Seconds in a day.
pub const DAY_S: i64 = 86_400;
/// Seconds in a week.
pub const WEEK_S: i64 = 7 * DAY_S;
/// The county's local time is UTC+8: the diurnal curves follow local time.
pub const LOCAL_OFFSET_S: i64 = 8 * 3600;
/// 2024-01-01T00:00:00Z: the totaliser's reference instant.
pub const VOLUME_REF_S: i64 = 1_704_067_200;

/// Diurnal shape of domestic wastewater flow, mean 1 over a day, by local hour.
///
/// A first harmonic makes the day busier than the night (lowest about 02:00); a second one
/// puts peaks at 07:30 and 19:30 (mornings and evenings at home).
pub fn diurnal(local_hour: f64) -> f64 {
    1.0 + A1 * (2.0 * PI * (local_hour - H1) / 24.0).cos()
        + A2 * (4.0 * PI * (local_hour - H2) / 24.0).cos()
}

const A1: f64 = 0.35;
const H1: f64 = 13.5;
const A2: f64 = 0.35;
const H2: f64 = 7.5;

/// Integral of [`diurnal`] over hours, from an arbitrary origin (not reduced modulo a day).
fn diurnal_integral(hours: f64) -> f64 {
    hours
        + A1 * 24.0 / (2.0 * PI) * (2.0 * PI * (hours - H1) / 24.0).sin()
        + A2 * 24.0 / (4.0 * PI) * (4.0 * PI * (hours - H2) / 24.0).sin()
}

/// Local hours since the Unix epoch (continuous).
fn local_hours(t: i64) -> f64 {
    (t + LOCAL_OFFSET_S) as f64 / 3600.0
}

/// Local hour of the day, 0 to 24.
pub fn local_hour(t: i64) -> f64 {
    local_hours(t).rem_euclid(24.0)
}

/// True flow in m3/h at `t` for a terminal treating `daily_m3` a day.
pub fn flow_m3h(daily_m3: f64, t: i64) -> f64 {
    daily_m3 / 24.0 * diurnal(local_hour(t))
}

/// The totaliser at `t`: `volume_at_ref` at [`VOLUME_REF_S`] plus the exact integral of
/// [`flow_m3h`] since then.
pub fn volume_m3(daily_m3: f64, volume_at_ref: f64, t: i64) -> f64 {
    let hours = diurnal_integral(local_hours(t)) - diurnal_integral(local_hours(VOLUME_REF_S));
    volume_at_ref + daily_m3 / 24.0 * hours
}

/// One rain shower: when it starts and how much it stirs up the effluent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rain {
    /// Unix seconds.
    pub start: i64,
    /// Turbidity it adds at its peak, NTU.
    pub peak_ntu: f64,
}

/// The county's weather: at most one shower per local day, on about one day in four, the
/// same for every terminal of a scenario.
pub fn rain_on_day(seed: u64, local_day: i64) -> Option<Rain> {
    let h = mix(seed ^ 0x5261_696e, local_day as u64);
    if !h.is_multiple_of(4) {
        return None;
    }
    let minute = (h >> 8) % (24 * 60);
    let peak_ntu = 5.0 + ((h >> 24) % 3000) as f64 / 100.0;
    Some(Rain {
        start: local_day * DAY_S - LOCAL_OFFSET_S + minute as i64 * 60,
        peak_ntu,
    })
}

/// How a shower shows in the effluent `dt` seconds after it starts: rises over about two
/// hours, decays over about half a day.
fn rain_response(dt: i64) -> f64 {
    if dt < 0 {
        return 0.0;
    }
    let h = dt as f64 / 3600.0;
    (1.0 - (-h / 1.5).exp()) * (-h / 12.0).exp()
}

/// Effluent turbidity in NTU: a base level, a little more when the flow peaks, and the
/// showers of the last four days (delayed by `delay_s` for this terminal).
pub fn turbidity_ntu(seed: u64, base_ntu: f64, delay_s: i64, t: i64) -> f64 {
    let day = (t + LOCAL_OFFSET_S).div_euclid(DAY_S);
    let rain: f64 = (day - 4..=day)
        .filter_map(|d| rain_on_day(seed, d))
        .map(|r| r.peak_ntu * rain_response(t - r.start - delay_s))
        .sum();
    base_ntu * (0.8 + 0.2 * diurnal(local_hour(t))) + rain
}

/// Sludge level in % of the working depth: rises at `rate_pct_week` from 8 % to 26 %, then
/// the tank is desludged and it starts again. `phase_s` shifts the cycle per terminal.
pub fn sludge_pct(rate_pct_week: f64, phase_s: i64, t: i64) -> f64 {
    const LOW: f64 = 8.0;
    const HIGH: f64 = 26.0;
    let period_s = ((HIGH - LOW) / rate_pct_week * WEEK_S as f64) as i64;
    let into = (t - phase_s).rem_euclid(period_s);
    LOW + (HIGH - LOW) * into as f64 / period_s as f64
}

/// Supply voltage: a 12 V battery on a solar charger, highest early afternoon.
pub fn supply_v(base_v: f64, t: i64) -> f64 {
    base_v + 0.6 * (2.0 * PI * (local_hour(t) - 7.0) / 24.0).sin()
}

/// A number in -1..1 that depends only on its inputs: the noise of one signal of one
/// terminal at one second.
pub fn noise(seed: u64, terminal: u64, signal: u64, t: i64) -> f64 {
    let h = mix(mix(seed, terminal), mix(signal, t as u64));
    (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// splitmix64 of `a` and `b`.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local midnight: 2026-11-22T00:00:00+08:00.
    const MIDNIGHT: i64 = 20_779 * DAY_S - LOCAL_OFFSET_S;

    #[test]
    fn the_test_midnight_is_a_local_midnight() {
        assert_eq!(local_hour(MIDNIGHT), 0.0);
    }

    #[test]
    fn flow_is_low_at_night_and_peaks_in_the_morning_and_the_evening() {
        let at = |h: f64| flow_m3h(48.0, MIDNIGHT + (h * 3600.0) as i64);
        let night = at(3.0);
        let (morning, midday, evening) = (at(7.5), at(13.0), at(19.5));
        assert!(night < 0.5 * morning, "night {night}, morning {morning}");
        assert!(
            morning > midday && evening > midday,
            "{morning} {midday} {evening}"
        );
        let lowest = (0..24 * 60)
            .map(|m| at(m as f64 / 60.0))
            .fold(f64::MAX, f64::min);
        assert!(lowest > 0.0, "flow never stops: {lowest}");
        // The lowest hour is in the small hours.
        let lowest_hour = (0..24)
            .min_by(|a, b| at(*a as f64).total_cmp(&at(*b as f64)))
            .unwrap();
        assert!((0..=4).contains(&lowest_hour), "{lowest_hour}");
    }

    #[test]
    fn a_day_of_flow_adds_up_to_the_daily_volume() {
        let mean: f64 = (0..24 * 60)
            .map(|m| flow_m3h(48.0, MIDNIGHT + m * 60))
            .sum::<f64>()
            / (24.0 * 60.0);
        assert!((mean - 2.0).abs() < 1e-6, "{mean}");
    }

    #[test]
    fn the_totaliser_is_the_integral_of_the_flow() {
        let (daily, v0) = (37.0, 1234.0);
        assert!((volume_m3(daily, v0, VOLUME_REF_S) - v0).abs() < 1e-9);
        // Trapezoids over a day, one a minute, against the closed form.
        let start = MIDNIGHT + 5 * 3600 + 17;
        let mut integral = 0.0;
        for m in 0..24 * 60 {
            let (a, b) = (start + m * 60, start + (m + 1) * 60);
            integral += (flow_m3h(daily, a) + flow_m3h(daily, b)) / 2.0 / 60.0;
        }
        let closed = volume_m3(daily, v0, start + DAY_S) - volume_m3(daily, v0, start);
        assert!((integral - closed).abs() < 1e-3, "{integral} vs {closed}");
        assert!((closed - daily).abs() < 1e-6);
    }

    #[test]
    fn turbidity_rises_after_rain_and_settles_back() {
        let seed = 11;
        let day = (1..400)
            .map(|d| MIDNIGHT / DAY_S + d)
            .find(|d| {
                rain_on_day(seed, *d).is_some()
                    && (1..=5).all(|k| rain_on_day(seed, d - k).is_none())
            })
            .expect("some rain in a year");
        let rain = rain_on_day(seed, day).unwrap();
        let before = turbidity_ntu(seed, 3.0, 0, rain.start - 60);
        let after = turbidity_ntu(seed, 3.0, 0, rain.start + 3 * 3600);
        let later = turbidity_ntu(seed, 3.0, 0, rain.start + 4 * DAY_S);
        assert!(before < 5.0, "{before}");
        assert!(after > before + 2.0, "{before} -> {after}");
        assert!(later < before + 1.0, "{later}");
    }

    #[test]
    fn sludge_rises_a_few_percent_a_week_until_desludged() {
        let rate = 3.0;
        let t = MIDNIGHT;
        let a = sludge_pct(rate, 0, t);
        let b = sludge_pct(rate, 0, t + WEEK_S);
        let rise = (b - a).rem_euclid(18.0);
        assert!((rise - 3.0).abs() < 0.01, "{a} -> {b}");
        let levels: Vec<f64> = (0..60)
            .map(|d| sludge_pct(rate, 0, t + d * DAY_S))
            .collect();
        assert!(levels.iter().all(|l| (8.0..26.0).contains(l)));
        assert!(
            levels.windows(2).any(|w| w[1] < w[0]),
            "desludged at least once"
        );
    }

    #[test]
    fn noise_is_a_pure_function_of_its_inputs() {
        assert_eq!(noise(1, 2, 3, 4), noise(1, 2, 3, 4));
        assert_ne!(noise(1, 2, 3, 4), noise(2, 2, 3, 4));
        let values: Vec<f64> = (0..1000).map(|t| noise(1, 2, 3, t)).collect();
        assert!(values.iter().all(|v| (-1.0..1.0).contains(v)));
        let mean = values.iter().sum::<f64>() / 1000.0;
        assert!(mean.abs() < 0.1, "{mean}");
    }
}
