// Turning the readings API's answer into chart columns, with data gaps found and broken.
// Pure: no DOM, so `node --test` can check it.

import { toMs } from './format.js';

/** The shortest gap worth marking on a chart, seconds: a node publishes every 5 minutes by
 * default, so anything shorter is ordinary batching. */
export const MIN_GAP_S = 15 * 60;

function median(xs) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Columns for uPlot from `GET /terminals/{id}/readings` JSON, raw or stepped.
 *
 * Returns `{x, fields: {field: {mean, min, max}}, gaps: [[fromS, toS]], expected}` where `x`
 * is Unix seconds, raw readings fill `mean` only (min and max stay null), and a null point is
 * inserted inside every gap so the line breaks there instead of bridging it.
 * `fromS`/`toS` bound the requested range so empty starts and ends count as gaps too.
 */
export function toColumns(body, fields, fromS, toS) {
  const rows = body.readings || [];
  const stepped = body.step_s != null;
  const ts = rows.map((r) => Math.floor(toMs(r.ts) / 1000));
  const deltas = [];
  for (let i = 1; i < ts.length; i++) deltas.push(ts[i] - ts[i - 1]);
  const expected = stepped ? body.step_s : median(deltas) ?? 60;
  const limit = stepped ? Math.max(expected * 1.5, MIN_GAP_S) : Math.max(expected * 3, MIN_GAP_S);

  const gaps = [];
  if (ts.length === 0) {
    if (toS - fromS >= MIN_GAP_S) gaps.push([fromS, toS]);
  } else {
    const lead = ts[0] - fromS;
    if (lead > limit) gaps.push([fromS, ts[0]]);
  }
  const x = [];
  const cols = Object.fromEntries(fields.map((f) => [f, { mean: [], min: [], max: [] }]));
  const push = (t, row) => {
    x.push(t);
    for (const f of fields) {
      const v = row ? row[f] : null;
      const c = cols[f];
      if (v == null) {
        c.mean.push(null);
        c.min.push(null);
        c.max.push(null);
      } else if (typeof v === 'object') {
        c.mean.push(v.mean);
        c.min.push(v.min);
        c.max.push(v.max);
      } else {
        c.mean.push(v);
        c.min.push(null);
        c.max.push(null);
      }
    }
  };
  for (let i = 0; i < rows.length; i++) {
    if (i > 0 && ts[i] - ts[i - 1] > limit) {
      gaps.push([ts[i - 1], ts[i]]);
      push(ts[i - 1] + 1, null);
    }
    push(ts[i], rows[i]);
  }
  if (ts.length > 0) {
    const end = stepped ? ts[ts.length - 1] + expected : ts[ts.length - 1];
    if (toS - end > limit) gaps.push([end, toS]);
  }
  return { x, fields: cols, gaps, expected, stepped };
}

/** Periods when alerts of `terminal` were active, clipped to [fromS, toS]:
 * `[{from, to, severity, rule}]` in Unix seconds; an active alert runs to `nowS`. */
export function alertPeriods(alerts, terminal, fromS, toS, nowS) {
  const out = [];
  for (const a of alerts) {
    if (a.terminal !== terminal) continue;
    const start = Math.floor(toMs(a.opened_at) / 1000);
    const end = a.resolved_at ? Math.floor(toMs(a.resolved_at) / 1000) : nowS;
    if (end < fromS || start > toS) continue;
    out.push({ from: Math.max(start, fromS), to: Math.min(end, toS), severity: a.severity, rule: a.rule });
  }
  return out;
}
