// Formatting and time helpers. Pure: no DOM, so `node --test` can check them.

/** Seconds after which a terminal without a message counts as offline: the gateway's rule
 * (three publish intervals at the default schedule, docs/api.md). */
export const STALE_AFTER_S = 15 * 60;

/** Chart and export ranges offered as buttons, in seconds. */
export const RANGES = [
  { key: '1h', seconds: 3600 },
  { key: '6h', seconds: 6 * 3600 },
  { key: '24h', seconds: 86400 },
  { key: '7d', seconds: 7 * 86400 },
  { key: '30d', seconds: 30 * 86400 },
  { key: '90d', seconds: 90 * 86400 },
  { key: '1y', seconds: 365 * 86400 },
];

/** The API `step` for a range: raw readings up to 2 days, hourly rollups up to 60 days,
 * daily beyond, so a year is 365 points instead of half a million. */
export function chooseStep(rangeSeconds) {
  if (rangeSeconds <= 2 * 86400) return null;
  if (rangeSeconds <= 60 * 86400) return '1h';
  return '1d';
}

/** Step strings (`5m`, `1h`, `1d`) in seconds; null for raw. */
export function stepSeconds(step) {
  if (!step) return null;
  const m = /^(\d+)([smhd])$/.exec(step);
  if (!m) throw new Error(`bad step ${step}`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
}

/** RFC 3339 UTC without fractions, as the API wants it. */
export function rfc3339(ms) {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** Milliseconds since the epoch from an RFC 3339 string or Unix seconds; null stays null. */
export function toMs(t) {
  if (t == null) return null;
  if (typeof t === 'number') return t * 1000;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

const partsCache = new Map();
function partsFormatter(timeZone) {
  let f = partsCache.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    partsCache.set(timeZone, f);
  }
  return f;
}

function wallClock(ms, timeZone) {
  const p = {};
  for (const { type, value } of partsFormatter(timeZone).formatToParts(new Date(ms))) p[type] = value;
  return p;
}

/** Offset of `timeZone` from UTC at instant `ms`, in minutes (Asia/Shanghai: 480). */
export function tzOffsetMinutes(ms, timeZone) {
  const p = wallClock(ms, timeZone);
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
}

function offsetString(minutes) {
  const sign = minutes < 0 ? '-' : '+';
  const a = Math.abs(minutes);
  return `${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

/** ISO 8601 local time with its offset: `2026-11-22T15:40:00+08:00`. Unambiguous in a CSV. */
export function localIso(ms, timeZone) {
  const p = wallClock(ms, timeZone);
  const off = offsetString(tzOffsetMinutes(ms, timeZone));
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}${off}`;
}

/** `UTC+08:00` for the zone now: shown next to every time in the UI. */
export function utcOffsetLabel(timeZone, ms = Date.now()) {
  return `UTC${offsetString(tzOffsetMinutes(ms, timeZone))}`;
}

/** The value of a `datetime-local` input (`2026-11-22T15:40`) as local time in `timeZone`
 * (the site's, not the browser's), to milliseconds since the epoch. */
export function parseLocalInput(value, timeZone) {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?$/.exec(value || '');
  if (!m) return null;
  const guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0));
  let ms = guess - tzOffsetMinutes(guess, timeZone) * 60000;
  // Across an offset change the first guess can be an hour off: correct once.
  ms = guess - tzOffsetMinutes(ms, timeZone) * 60000;
  return ms;
}

/** The inverse of parseLocalInput: `2026-11-22T15:40` in `timeZone`. */
export function toLocalInput(ms, timeZone) {
  const p = wallClock(ms, timeZone);
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

/** Formatters bound to a UI language and the site's time zone. */
export function makeFormat(locale, timeZone) {
  const dateTime = new Intl.DateTimeFormat(locale, {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  });
  const dateTimeSec = new Intl.DateTimeFormat(locale, {
    timeZone,
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  });
  const time = new Intl.DateTimeFormat(locale, {
    timeZone,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  });
  const day = new Intl.DateTimeFormat(locale, { timeZone, month: '2-digit', day: '2-digit' });
  const date = new Intl.DateTimeFormat(locale, { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
  const month = new Intl.DateTimeFormat(locale, { timeZone, year: 'numeric', month: 'short' });
  const monthName = new Intl.DateTimeFormat(locale, { timeZone, month: 'short' });
  const year = new Intl.DateTimeFormat('en', { timeZone, year: 'numeric' });
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: 'auto', style: 'short' });
  const numbers = new Map();
  const num = (digits) => {
    let f = numbers.get(digits);
    if (!f) {
      f = new Intl.NumberFormat(locale, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
      numbers.set(digits, f);
    }
    return f;
  };
  return {
    locale,
    timeZone,
    /** `2026/11/22 15:40` (zh-CN) or `11/22/2026, 15:40` (en). */
    dateTime: (t) => (t == null ? '—' : dateTime.format(new Date(toMs(t)))),
    dateTimeSec: (t) => (t == null ? '—' : dateTimeSec.format(new Date(toMs(t)))),
    time: (t) => (t == null ? '—' : time.format(new Date(toMs(t)))),
    day: (t) => day.format(new Date(toMs(t))),
    /** A whole date: `2026/11/30` (zh-CN) or `11/30/2026` (en). */
    date: (t) => (t == null ? '—' : date.format(new Date(toMs(t)))),
    month: (t) => month.format(new Date(toMs(t))),
    monthName: (t) => monthName.format(new Date(toMs(t))),
    year: (t) => year.format(new Date(toMs(t))),
    /** A number with at most `digits` decimals; a dash for none. */
    number: (v, digits = 1) => (v == null || Number.isNaN(v) ? '—' : num(digits).format(v)),
    /** How long ago, short: `5 min ago` / `5分钟前`. */
    age: (seconds) => formatAge(rtf, seconds),
  };
}

function formatAge(rtf, seconds) {
  if (seconds == null) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 45) return rtf.format(0, 'second');
  if (s < 3600) return rtf.format(-Math.max(1, Math.round(s / 60)), 'minute');
  if (s < 86400) return rtf.format(-Math.round(s / 3600), 'hour');
  return rtf.format(-Math.round(s / 86400), 'day');
}

/** A duration in whole units, for alert ages: [value, unit] with unit one of m, h, d. */
export function durationParts(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 3600) return [Math.floor(s / 60), 'm'];
  if (s < 86400 * 2) return [Math.floor(s / 3600), 'h'];
  return [Math.floor(s / 86400), 'd'];
}
