//! A stored reading as a real-time upload (CN 2011): Weir's units converted to the codes'
//! units, each sensor fault as a data flag, times in the site's time zone.

use weir_contract::{Fault, Quantity};
use weir_hj212::{
    codes, CommandCode, CpBuilder, DataFlag, DataTime, Decimal, Field, Flag, Header, Item, Packet,
    Qn, SystemCode, Value,
};
use weir_store::readings::Row;

use super::config::FactorCodes;

/// Litres per second in one cubic metre per hour.
const LPS_PER_M3H: f64 = 1.0 / 3.6;

/// The data flag for a sensor fault (docs/hj212.md): `B` when the sensor did not answer the
/// node, `T` above its range, `D` for the other faults.
pub fn fault_flag(fault: Fault) -> DataFlag {
    match fault {
        Fault::NoResponse => DataFlag::CommunicationFault,
        Fault::OutOfRange => DataFlag::OverRange,
        _ => DataFlag::Fault,
    }
}

/// `ts` (Unix seconds) as the platform reads times: local time of the site.
pub fn data_time(ts: i64, tz: &jiff::tz::TimeZone) -> Option<DataTime> {
    let t = jiff::Timestamp::from_second(ts).ok()?.to_zoned(tz.clone());
    DataTime::new(
        u16::try_from(t.year()).ok()?,
        u8::try_from(t.month()).ok()?,
        u8::try_from(t.day()).ok()?,
        u8::try_from(t.hour()).ok()?,
        u8::try_from(t.minute()).ok()?,
        u8::try_from(t.second()).ok()?,
    )
}

/// A QN for Unix milliseconds `ms` in the site's time zone.
pub fn qn(ms: i64, tz: &jiff::tz::TimeZone) -> Option<Qn> {
    let time = data_time(ms.div_euclid(1000), tz)?;
    Qn::new(time, u16::try_from(ms.rem_euclid(1000)).ok()?)
}

/// The CP of a real-time upload of `row`: `DataTime`, then `-Rtd` and `-Flag` of flow (L/s),
/// turbidity (NTU) and sludge level (m, needs the tank's working depth), each only where the
/// reading has a value or a fault. `None` when it has none of them (nothing to send).
pub fn real_time_cp(
    row: &Row,
    codes: &FactorCodes,
    tank_depth_m: Option<f64>,
    tz: &jiff::tz::TimeZone,
) -> Option<CpBuilder> {
    let faults = row.faults();
    let value = |q: Quantity| {
        Quantity::ALL
            .iter()
            .position(|x| *x == q)
            .and_then(|i| row.values[i])
    };
    let factors = [
        (
            Quantity::Flow,
            codes.flow.as_str(),
            value(Quantity::Flow).map(|v| v * LPS_PER_M3H),
            codes::FLOW.decimals,
        ),
        (
            Quantity::Turbidity,
            codes.turbidity.as_str(),
            value(Quantity::Turbidity),
            codes::TURBIDITY.decimals,
        ),
        (
            Quantity::Sludge,
            codes.sludge.as_str(),
            // Without the tank's depth a share of it has no length in metres.
            value(Quantity::Sludge).and_then(|pct| tank_depth_m.map(|d| pct / 100.0 * d)),
            codes::SLUDGE_LEVEL.decimals,
        ),
    ];
    let mut items = Vec::with_capacity(factors.len());
    for (q, code, v, decimals) in factors {
        let fault = faults.iter().find(|(fq, _)| *fq == q).map(|(_, f)| *f);
        match (v.and_then(|v| Decimal::from_f64(v, decimals)), fault) {
            (Some(number), _) => items.push(Item {
                code,
                field: Field::Rtd,
                value: Value::Number(number),
                flag: Some(DataFlag::Normal),
            }),
            (None, Some(fault)) => items.push(Item {
                code,
                field: Field::Rtd,
                // The standard has no empty value; a failed sensor reads 0 with its flag.
                value: Value::Number(Decimal::new(0, 0)?),
                flag: Some(fault_flag(fault)),
            }),
            (None, None) => {}
        }
    }
    if items.is_empty() {
        return None;
    }
    let mut cp = CpBuilder::new();
    cp.data_time(data_time(row.ts, tz)?).ok()?;
    cp.items(&items).ok()?;
    Some(cp)
}

/// What identifies an upload's sender and asks (or not) for an answer.
#[derive(Clone, Copy, Debug)]
pub struct Sender<'a> {
    /// `ST`.
    pub st: SystemCode,
    /// `MN`.
    pub mn: &'a str,
    /// `PW`.
    pub pw: &'a str,
    /// Ask for a data answer (9014).
    pub answer: bool,
}

/// The whole frame of a real-time upload.
pub fn real_time_frame(
    sender: Sender<'_>,
    qn: Qn,
    cp: &CpBuilder,
) -> Result<Vec<u8>, weir_hj212::EncodeError> {
    frame(sender, CommandCode::REAL_TIME_DATA, qn, cp)
}

/// The whole frame of an upload with command `cn`.
pub fn frame(
    sender: Sender<'_>,
    cn: CommandCode,
    qn: Qn,
    cp: &CpBuilder,
) -> Result<Vec<u8>, weir_hj212::EncodeError> {
    let packet = Packet {
        header: Header {
            qn: Some(qn),
            st: sender.st,
            cn,
            pw: sender.pw,
            mn: sender.mn,
            flag: Flag::new(Flag::VERSION_2017, false, sender.answer),
            split: None,
        },
        cp: cp.cp(),
    };
    Ok(packet.to_frame()?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()
    }

    fn row(values: [Option<f64>; 6], faults: Option<&str>) -> Row {
        Row {
            // 2026-03-01 00:15:00 UTC, 08:15 in Shanghai.
            ts: 1_772_324_100,
            values,
            faults: faults.map(str::to_owned),
        }
    }

    #[test]
    fn flow_goes_out_in_litres_per_second_and_sludge_in_metres_of_the_tank() {
        // flow 4.5 m³/h, turbidity 3.4 NTU, sludge 41.5 % of a 2 m tank.
        let r = row([Some(4.5), None, Some(3.4), Some(41.5), None, None], None);
        let cp = real_time_cp(&r, &FactorCodes::default(), Some(2.0), &shanghai()).unwrap();
        assert_eq!(
            cp.cp().as_str(),
            "DataTime=20260301081500;w00000-Rtd=1.25,w00000-Flag=N;w01003-Rtd=3.4,w01003-Flag=N;e71001-Rtd=0.830,e71001-Flag=N"
        );
    }

    #[test]
    fn a_failed_sensor_is_flagged_and_an_unknown_tank_depth_leaves_sludge_out() {
        let r = row(
            [None, None, None, Some(40.0), None, None],
            Some(r#"{"flow_m3h":"no_response","turbidity_ntu":"out_of_range"}"#),
        );
        let cp = real_time_cp(&r, &FactorCodes::default(), None, &shanghai()).unwrap();
        assert_eq!(
            cp.cp().as_str(),
            "DataTime=20260301081500;w00000-Rtd=0,w00000-Flag=B;w01003-Rtd=0,w01003-Flag=T"
        );
        let nothing = row([None, None, None, None, Some(3.3), None], None);
        assert!(real_time_cp(&nothing, &FactorCodes::default(), None, &shanghai()).is_none());
    }

    #[test]
    fn a_frame_decodes_with_its_qn_and_answer_flag() {
        let r = row([Some(3.6), None, None, None, None, None], None);
        let cp = real_time_cp(&r, &FactorCodes::default(), None, &shanghai()).unwrap();
        let qn = qn(1_772_324_100_123, &shanghai()).unwrap();
        let sender = Sender {
            st: SystemCode::SURFACE_WATER_POLLUTION_SOURCE,
            mn: "MN-1",
            pw: "123456",
            answer: true,
        };
        let frame = real_time_frame(sender, qn, &cp).unwrap();
        let p = Packet::decode(&frame).unwrap();
        assert_eq!(p.header.qn, Some(qn));
        assert_eq!(p.header.cn, CommandCode::REAL_TIME_DATA);
        assert!(p.answer_required());
        assert_eq!(p.cp.get("w00000-Rtd"), Some("1.00"));
    }
}
