// The export: the API's CSV (UTC, units in column names) with a local-time column added.
// Pure: no DOM, so `node --test` can check it.

import { localIso } from './format.js';

/**
 * Adds `ts_local` (ISO 8601 with the zone's offset, e.g. `2026-11-22T15:40:00+08:00`) after
 * `ts_utc` in the API's CSV. Every other column is kept byte for byte. With `header: false`
 * the header line is dropped, for appending a second terminal's file.
 */
export function addLocalTime(csv, timeZone, { header = true } = {}) {
  const lines = csv.split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (line === '') continue;
    // Terminal ids and timestamps hold no commas, so the second comma ends ts_utc even
    // when a later field (faults) is quoted JSON.
    const a = line.indexOf(',');
    const b = line.indexOf(',', a + 1);
    if (a < 0 || b < 0) throw new Error(`line ${i + 1} of the export is not CSV: ${line.slice(0, 80)}`);
    if (i === 0) {
      if (line.slice(a + 1, b) !== 'ts_utc') throw new Error('the export has no ts_utc column');
      if (header) out.push(`${line.slice(0, b)},ts_local${line.slice(b)}`);
      continue;
    }
    const ms = Date.parse(line.slice(a + 1, b));
    if (Number.isNaN(ms)) throw new Error(`line ${i + 1} has a bad time: ${line.slice(a + 1, b)}`);
    out.push(`${line.slice(0, b)},${localIso(ms, timeZone)}${line.slice(b)}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** A file name that says what is inside: terminals, period (site-local dates) and zone. */
export function exportFileName(terminals, fromLocalDate, toLocalDate, step, timeZone) {
  const who = terminals.length <= 3 ? terminals.join('_') : `${terminals.length}-terminals`;
  const zone = timeZone.replace(/[^A-Za-z0-9]+/g, '-');
  return `weir_${who}_${fromLocalDate}_${toLocalDate}_${step || 'raw'}_${zone}.csv`;
}
