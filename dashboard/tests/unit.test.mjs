// Pure-JS checks, no gateway or browser needed: dictionaries, formatting, domain rules, the
// export's local-time column and the chart's gap finding.

import test from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { DICTIONARIES, pickLanguage, placeholders, translate } from '../src/i18n.js';
import { chooseStep, localIso, makeFormat, parseLocalInput, rfc3339, toLocalInput, tzOffsetMinutes, utcOffsetLabel } from '../src/format.js';
import { alertActions, can, compareAlerts, crewCovers, groupByIncident, isOnline, terminalState } from '../src/state.js';
import { addLocalTime, exportFileName } from '../src/csv.js';
import { alertPeriods, toColumns } from '../src/series.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const en = DICTIONARIES.en;
const zh = DICTIONARIES['zh-CN'];

test('both dictionaries have exactly the same keys', () => {
  const onlyEn = Object.keys(en).filter((k) => !(k in zh));
  const onlyZh = Object.keys(zh).filter((k) => !(k in en));
  assert.deepEqual({ onlyEn, onlyZh }, { onlyEn: [], onlyZh: [] });
});

test('every translation fills the same placeholders as the English string', () => {
  const differing = Object.keys(en).filter((k) => placeholders(en[k]).join() !== placeholders(zh[k]).join());
  assert.deepEqual(differing, []);
});

test('no dictionary string is empty', () => {
  for (const [lang, dict] of Object.entries(DICTIONARIES)) {
    const empty = Object.entries(dict).filter(([, v]) => typeof v !== 'string' || v.trim() === '');
    assert.deepEqual(empty, [], `${lang} has empty strings`);
  }
});

test('every literal key the source uses exists in the dictionaries', async () => {
  const files = [];
  const walk = async (dir) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (p.endsWith('.js')) files.push(p);
    }
  };
  await walk(path.join(here, '../src'));
  const namespaces = new Set(Object.keys(en).map((k) => k.split('.')[0]));
  const missing = [];
  for (const f of files) {
    const src = await readFile(f, 'utf8');
    for (const m of src.matchAll(/\bt\('([a-zA-Z0-9_.-]+)'/g)) if (!(m[1] in en)) missing.push(`${path.basename(f)}: ${m[1]}`);
    // Keys listed for a table header and passed to t() one by one.
    for (const m of src.matchAll(/'([a-z]+\.[a-zA-Z]+)'/g)) {
      if (namespaces.has(m[1].split('.')[0]) && !(m[1] in en)) missing.push(`${path.basename(f)}: ${m[1]}`);
    }
  }
  assert.ok(files.length > 5, 'found the sources');
  assert.deepEqual(missing, []);
});

test('the language follows the browser, prefers a saved choice, and falls back to English', () => {
  assert.equal(pickLanguage(['zh-TW', 'en']), 'zh-CN');
  assert.equal(pickLanguage(['zh']), 'zh-CN');
  assert.equal(pickLanguage(['en-GB', 'zh-CN']), 'en');
  assert.equal(pickLanguage(['fr-FR', 'zh-CN']), 'zh-CN');
  assert.equal(pickLanguage(['fr-FR']), 'en');
  assert.equal(pickLanguage(['zh-CN'], 'en'), 'en');
  assert.equal(pickLanguage(['en'], 'xx'), 'en');
});

test('translate fills placeholders and shows an unknown key as itself', () => {
  assert.equal(translate('en', 'nav.activeAlerts', { n: 3 }), '3 active alerts');
  assert.equal(translate('zh-CN', 'nav.activeAlerts', { n: 3 }), '3 条未处理告警');
  assert.equal(translate('zh-CN', 'no.such.key'), 'no.such.key');
});

test('times are shown in the site zone whatever the machine zone is', () => {
  const f = makeFormat('zh-CN', 'Asia/Shanghai');
  assert.equal(f.dateTime('2026-11-22T07:40:00Z'), '2026/11/22 15:40');
  assert.equal(f.time(Date.parse('2026-11-22T16:05:00Z') / 1000), '00:05');
  const g = makeFormat('en', 'Asia/Shanghai');
  assert.match(g.dateTime('2026-11-22T07:40:00Z'), /11\/22\/2026,? 15:40/);
  assert.equal(g.dateTime(null), '—');
});

test('ages read naturally in both languages', () => {
  const zhf = makeFormat('zh-CN', 'Asia/Shanghai');
  const enf = makeFormat('en', 'Asia/Shanghai');
  assert.equal(zhf.age(300), '5分钟前');
  assert.equal(enf.age(300), '5 min. ago');
  assert.equal(enf.age(2 * 3600 + 100), '2 hr. ago');
  assert.equal(enf.age(3 * 86400), '3 days ago');
  assert.equal(enf.age(10), 'now');
});

test('numbers keep the digits asked for and show a dash for no value', () => {
  const f = makeFormat('en', 'UTC');
  assert.equal(f.number(1.5234, 2), '1.52');
  assert.equal(f.number(41.5, 0), '42');
  assert.equal(f.number(null), '—');
  assert.equal(makeFormat('zh-CN', 'UTC').number(12345.6, 1), '12,345.6');
});

test('local ISO times carry the zone offset', () => {
  const ms = Date.parse('2026-11-22T07:40:00Z');
  assert.equal(localIso(ms, 'Asia/Shanghai'), '2026-11-22T15:40:00+08:00');
  assert.equal(localIso(ms, 'UTC'), '2026-11-22T07:40:00+00:00');
  assert.equal(localIso(Date.parse('2026-07-01T12:00:00Z'), 'America/New_York'), '2026-07-01T08:00:00-04:00');
  assert.equal(tzOffsetMinutes(ms, 'Asia/Kolkata'), 330);
  assert.equal(utcOffsetLabel('Asia/Shanghai', ms), 'UTC+08:00');
});

test('a local date-time input is read in the site zone and written back the same', () => {
  const ms = parseLocalInput('2026-11-22T15:40', 'Asia/Shanghai');
  assert.equal(rfc3339(ms), '2026-11-22T07:40:00Z');
  assert.equal(toLocalInput(ms, 'Asia/Shanghai'), '2026-11-22T15:40');
  assert.equal(rfc3339(parseLocalInput('2026-03-08', 'America/New_York')), '2026-03-08T05:00:00Z');
  assert.equal(rfc3339(parseLocalInput('2026-03-09', 'America/New_York')), '2026-03-09T04:00:00Z');
  assert.equal(parseLocalInput('yesterday', 'UTC'), null);
});

test('long ranges ask the API for rollups', () => {
  assert.equal(chooseStep(3600), null);
  assert.equal(chooseStep(2 * 86400), null);
  assert.equal(chooseStep(7 * 86400), '1h');
  assert.equal(chooseStep(60 * 86400), '1h');
  assert.equal(chooseStep(365 * 86400), '1d');
});

const NOW = Date.parse('2026-11-22T08:00:00Z');
const term = (over = {}) => ({ id: 'HY-001', last_seen: NOW / 1000 - 60, status: { online: true }, ...over });
const alert = (over = {}) => ({ id: 1, terminal: 'HY-001', rule: 'turbidity', severity: 'warning', state: 'open', opened_at: '2026-11-22T07:00:00Z', work_order: null, ...over });

test('a terminal silent for more than 15 minutes or with an offline will is offline', () => {
  assert.equal(isOnline(term(), NOW), true);
  assert.equal(isOnline(term({ last_seen: NOW / 1000 - 16 * 60 }), NOW), false);
  assert.equal(isOnline(term({ status: { online: false } }), NOW), false);
  assert.equal(isOnline(term({ last_seen: null }), NOW), false);
  assert.equal(isOnline(term({ status: null }), NOW), true);
});

test('a terminal takes the colour of its worst active alert, and grey when offline', () => {
  assert.equal(terminalState(term(), [], NOW), 'ok');
  assert.equal(terminalState(term(), [alert()], NOW), 'warning');
  assert.equal(terminalState(term(), [alert({ severity: 'maintenance' })], NOW), 'warning');
  assert.equal(terminalState(term(), [alert(), alert({ id: 2, severity: 'alarm' })], NOW), 'alarm');
  assert.equal(terminalState(term(), [alert({ severity: 'alarm', state: 'resolved' })], NOW), 'ok');
  assert.equal(terminalState(term(), [alert({ severity: 'alarm', terminal: 'HY-002' })], NOW), 'ok');
  assert.equal(terminalState(term({ last_seen: 0 }), [alert({ severity: 'alarm' })], NOW), 'offline');
});

test('the inbox puts alarms first, open before acknowledged, the longest waiting first', () => {
  const list = [
    alert({ id: 1, severity: 'maintenance', opened_at: '2026-11-20T00:00:00Z' }),
    alert({ id: 2, severity: 'alarm', state: 'acknowledged', opened_at: '2026-11-21T00:00:00Z' }),
    alert({ id: 3, severity: 'alarm', opened_at: '2026-11-22T07:00:00Z' }),
    alert({ id: 4, severity: 'alarm', opened_at: '2026-11-22T06:00:00Z' }),
    alert({ id: 5, severity: 'warning' }),
  ];
  assert.deepEqual(list.sort(compareAlerts).map((a) => a.id), [4, 3, 2, 5, 1]);
});

test('alerts of one incident are grouped and the group sorts by its worst alert', () => {
  const incidents = [{ id: 9, kind: 'offline', terminals: ['HY-002', 'HY-003'], alert_ids: [2, 3] }];
  const groups = groupByIncident(
    [alert({ id: 1 }), alert({ id: 2, severity: 'alarm', incident_id: 9 }), alert({ id: 3, severity: 'alarm', incident_id: 9 })],
    incidents,
  );
  assert.equal(groups.length, 2);
  assert.equal(groups[0].incident.id, 9);
  assert.deepEqual(groups[0].alerts.map((a) => a.id), [2, 3]);
  assert.equal(groups[1].incident, null);
});

test('inspectors get no alert actions; field staff cannot acknowledge or dispatch', () => {
  assert.deepEqual(alertActions(alert(), 'inspector'), []);
  assert.deepEqual(alertActions(alert(), 'operator'), ['acknowledge', 'assign', 'dispatch', 'resolve', 'note']);
  assert.deepEqual(alertActions(alert(), 'field'), ['resolve', 'note']);
  const dispatched = alert({ state: 'acknowledged', work_order: { crew: 'A', dispatched_at: '2026-11-22T07:01:00Z', arrived_at: null } });
  assert.deepEqual(alertActions(dispatched, 'field'), ['arrive', 'resolve', 'note']);
  assert.deepEqual(alertActions(dispatched, 'admin'), ['assign', 'arrive', 'resolve', 'note']);
  assert.deepEqual(alertActions(alert({ state: 'resolved' }), 'admin'), []);
  assert.equal(can('inspector', 'deadLetters'), false);
  assert.equal(can('field', 'deadLetters'), true);
});

test('a crew zone names terminals or prefixes ending in a star', () => {
  const crew = { name: 'north', terminals: ['HY-001', 'HY-01*'] };
  assert.equal(crewCovers(crew, 'HY-001'), true);
  assert.equal(crewCovers(crew, 'HY-017'), true);
  assert.equal(crewCovers(crew, 'HY-002'), false);
  assert.equal(crewCovers({ name: 'empty' }, 'HY-001'), false);
});

test('the export gains a local-time column and keeps every other byte', () => {
  const csv =
    'terminal,ts_utc,flow_m3h,volume_m3,turbidity_ntu,sludge_pct,supply_v,rssi_dbm,faults\n' +
    'HY-001,2026-11-22T07:40:00Z,1.52,,3.4,41.5,,,\n' +
    'HY-001,2026-11-22T07:41:00Z,1.49,,,,,,"{""turbidity_ntu"":""no_response""}"\n';
  const out = addLocalTime(csv, 'Asia/Shanghai');
  assert.equal(
    out,
    'terminal,ts_utc,ts_local,flow_m3h,volume_m3,turbidity_ntu,sludge_pct,supply_v,rssi_dbm,faults\n' +
      'HY-001,2026-11-22T07:40:00Z,2026-11-22T15:40:00+08:00,1.52,,3.4,41.5,,,\n' +
      'HY-001,2026-11-22T07:41:00Z,2026-11-22T15:41:00+08:00,1.49,,,,,,"{""turbidity_ntu"":""no_response""}"\n',
  );
  assert.equal(addLocalTime(csv, 'UTC', { header: false }).split('\n')[0], 'HY-001,2026-11-22T07:40:00Z,2026-11-22T07:40:00+00:00,1.52,,3.4,41.5,,,');
  assert.equal(addLocalTime('terminal,ts_utc,n\n', 'UTC'), 'terminal,ts_utc,ts_local,n\n');
  assert.throws(() => addLocalTime('a,b,c\n1,2,3\n', 'UTC'), /ts_utc/);
});

test('the export file name says terminals, period, resolution and zone', () => {
  assert.equal(exportFileName(['HY-001'], '2026-11-01', '2026-11-22', null, 'Asia/Shanghai'), 'weir_HY-001_2026-11-01_2026-11-22_raw_Asia-Shanghai.csv');
  assert.equal(exportFileName(['A', 'B', 'C', 'D'], '2026-01-01', '2026-12-31', '1d', 'UTC'), 'weir_4-terminals_2026-01-01_2026-12-31_1d_UTC.csv');
});

test('charts break the line at data gaps and mark them, including an empty start and end', () => {
  const t0 = Date.parse('2026-11-22T00:00:00Z') / 1000;
  const at = (s) => new Date((t0 + s) * 1000).toISOString();
  const body = {
    step_s: null,
    readings: [
      { ts: at(3600), flow_m3h: 1 },
      { ts: at(3660), flow_m3h: 2 },
      { ts: at(3720), flow_m3h: 3, faults: { turbidity_ntu: 'no_response' } },
      { ts: at(3600 * 3), flow_m3h: 4 },
      { ts: at(3600 * 3 + 60), flow_m3h: 5 },
    ],
  };
  const c = toColumns(body, ['flow_m3h', 'turbidity_ntu'], t0, t0 + 4 * 3600);
  assert.deepEqual(c.gaps, [
    [t0, t0 + 3600],
    [t0 + 3720, t0 + 3 * 3600],
    [t0 + 3 * 3600 + 60, t0 + 4 * 3600],
  ]);
  assert.deepEqual(c.fields.flow_m3h.mean, [1, 2, 3, null, 4, 5]);
  assert.equal(c.x.length, 6);
  assert.deepEqual(c.fields.turbidity_ntu.mean, [null, null, null, null, null, null]);
});

test('rolled-up steps fill min, mean and max, and a missing step is a gap', () => {
  const t0 = Date.parse('2026-11-01T16:00:00Z') / 1000;
  const day = 86400;
  const row = (d, v) => ({ ts: new Date((t0 + d * day) * 1000).toISOString(), n: 1440, flow_m3h: { min: v - 1, mean: v, max: v + 1 } });
  const c = toColumns({ step_s: day, readings: [row(0, 2), row(1, 3), row(3, 4)] }, ['flow_m3h'], t0, t0 + 4 * day);
  assert.deepEqual(c.fields.flow_m3h.min, [1, 2, null, 3]);
  assert.deepEqual(c.fields.flow_m3h.max, [3, 4, null, 5]);
  assert.deepEqual(c.gaps, [[t0 + day, t0 + 3 * day]]);
});

test('alert periods are clipped to the chart and an active one runs to now', () => {
  const alerts = [
    alert({ id: 1, opened_at: '2026-11-22T06:00:00Z', resolved_at: '2026-11-22T07:00:00Z', state: 'resolved' }),
    alert({ id: 2, opened_at: '2026-11-22T07:30:00Z', severity: 'alarm' }),
    alert({ id: 3, terminal: 'HY-002' }),
    alert({ id: 4, opened_at: '2026-11-01T00:00:00Z', resolved_at: '2026-11-02T00:00:00Z', state: 'resolved' }),
  ];
  const s = (iso) => Date.parse(iso) / 1000;
  const p = alertPeriods(alerts, 'HY-001', s('2026-11-22T06:30:00Z'), s('2026-11-22T08:00:00Z'), s('2026-11-22T07:50:00Z'));
  assert.deepEqual(p, [
    { from: s('2026-11-22T06:30:00Z'), to: s('2026-11-22T07:00:00Z'), severity: 'warning', rule: 'turbidity' },
    { from: s('2026-11-22T07:30:00Z'), to: s('2026-11-22T07:50:00Z'), severity: 'alarm', rule: 'turbidity' },
  ]);
});
