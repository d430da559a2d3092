// Pure helpers of the reports page (docs/api.md, "Reports"): the period presets, the query a
// period makes, and a report turned into table rows and chart columns. No DOM.

import { parseLocalInput, rfc3339, toLocalInput } from './format.js';

export const PRESETS = ['lastMonth', 'thisMonth', 'custom'];
export const STEPS = ['acknowledge', 'dispatch', 'arrive', 'resolve'];
const DAY_MS = 86400000;

/** `YYYY-MM-DD` of instant `ms` in `tz`. */
export function localDate(ms, tz) {
  return toLocalInput(ms, tz).slice(0, 10);
}

/** The local date `n` days after `date` (`YYYY-MM-DD`), in `tz`. */
export function addDays(date, n, tz) {
  return localDate(parseLocalInput(date, tz) + n * DAY_MS + DAY_MS / 2, tz);
}

/** The first day of the month before the one of `date`. */
function previousMonthStart(date) {
  let y = Number(date.slice(0, 4));
  let m = Number(date.slice(5, 7)) - 1;
  if (m === 0) {
    m = 12;
    y -= 1;
  }
  return `${y}-${String(m).padStart(2, '0')}-01`;
}

/** A period as `{from, to}` in ms (`to` exclusive), from a preset at instant `nowMs` in the
 * site's zone `tz`: the last whole calendar month (the API's default), this month so far, or
 * custom local dates `fromDate`..`toDate` (both inclusive). Null when the dates make no period. */
export function presetPeriod(preset, nowMs, tz, { fromDate, toDate } = {}) {
  const today = localDate(nowMs, tz);
  const monthStart = `${today.slice(0, 8)}01`;
  if (preset === 'lastMonth') {
    return { from: parseLocalInput(previousMonthStart(today), tz), to: parseLocalInput(monthStart, tz) };
  }
  if (preset === 'thisMonth') {
    const from = parseLocalInput(monthStart, tz);
    // Up to the current minute's end, so the first minutes of a month still make a period.
    const to = Math.ceil((nowMs + 1) / 60000) * 60000;
    return { from, to };
  }
  if (preset === 'custom') {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(fromDate || '') || !/^\d{4}-\d{2}-\d{2}$/.test(toDate || '')) return null;
    const from = parseLocalInput(fromDate, tz);
    const to = parseLocalInput(addDays(toDate, 1, tz), tz);
    if (from == null || to == null || from >= to) return null;
    if (to - from > 366 * DAY_MS) return null;
    return { from, to };
  }
  return null;
}

/** The API query of a period: nothing for last month (the API's own default, so the page and
 * the CSV say the same as the API), else RFC 3339 `from` and `to`. */
export function periodQuery(preset, period) {
  if (preset === 'lastMonth' || !period) return {};
  return { from: rfc3339(period.from), to: rfc3339(period.to) };
}

/** The period a report covers as local dates for display: first day and last day (inclusive). */
export function periodDays(period, tz) {
  const from = Date.parse(period.from);
  const to = Date.parse(period.to);
  return { first: localDate(from, tz), last: localDate(to - 1000, tz) };
}

const sum = (xs) => xs.reduce((a, b) => a + b, 0);

/** One row of the county's ranking: a terminal's figures, rates 0-1 or null. */
export function terminalRow(r) {
  const gaps = r.completeness?.gaps || [];
  return {
    id: r.terminal,
    name: r.name,
    compliance: r.compliance?.rate ?? null,
    completeness: r.completeness?.rate ?? null,
    gaps: gaps.length,
    gapMinutes: sum(gaps.map((g) => g.minutes || 0)),
    uptime: r.uptime ?? null,
    hoursInAlarm: r.hours_in_alarm ?? 0,
    alerts: r.alerts_raised ?? 0,
    dispatchWithin: r.response?.dispatch?.within_target ?? null,
    dispatchN: r.response?.dispatch?.n ?? 0,
  };
}

/** The ranking table: the terminals in the API's ranking order (lowest compliance first,
 * those without turbidity readings last); any terminal the ranking leaves out follows. */
export function rankingRows(county) {
  const byId = new Map((county.terminals || []).map((r) => [r.terminal, r]));
  const ids = [...(county.ranking || []).filter((id) => byId.has(id))];
  for (const id of byId.keys()) if (!ids.includes(id)) ids.push(id);
  return ids.map((id, i) => ({ rank: i + 1, ...terminalRow(byId.get(id)) }));
}

/** Columns of the county's compliance bar chart: x the position in the ranking, y the rate in
 * percent (null without turbidity readings), and the terminal id of each position. */
export function complianceColumns(rows) {
  return {
    x: rows.map((_, i) => i),
    y: rows.map((r) => (r.compliance == null ? null : Math.round(r.compliance * 10000) / 100)),
    ids: rows.map((r) => r.id),
  };
}

/** Columns of a terminal's daily flow chart: x each local day's start (Unix seconds, site
 * zone), y m³; `source` `totaliser`, `integrated`, `mixed` or null without days. */
export function flowColumns(report, tz) {
  const days = report.daily_flow || [];
  const sources = new Set(days.map((d) => d.source));
  return {
    x: days.map((d) => Math.round(parseLocalInput(d.day, tz) / 1000)),
    y: days.map((d) => d.volume_m3),
    source: sources.size === 0 ? null : sources.size === 1 ? [...sources][0] : 'mixed',
    total: sum(days.map((d) => d.volume_m3 || 0)),
    counts: {
      totaliser: days.filter((d) => d.source === 'totaliser').length,
      integrated: days.filter((d) => d.source === 'integrated').length,
    },
  };
}

/** A terminal's gap list: start and end in ms, minutes. */
export function gapRows(report) {
  return (report.completeness?.gaps || []).map((g) => ({ start: Date.parse(g.start), end: Date.parse(g.end), minutes: g.minutes }));
}

/** A terminal's response times, one row per step in the order of a work order. */
export function responseRows(report) {
  return STEPS.map((step) => {
    const s = report.response?.[step] || {};
    return { step, n: s.n ?? 0, median: s.median_min ?? null, p90: s.p90_min ?? null, within: s.within_target ?? null };
  });
}

/** A rate 0-1 as a percentage number, or null. */
export function percent(rate) {
  return rate == null || Number.isNaN(rate) ? null : rate * 100;
}

/** The file name of the county CSV: `weir-county-report_2026-11-01_2026-11-30.csv`. */
export function reportFileName(days) {
  return `weir-county-report_${days.first}_${days.last}.csv`;
}
