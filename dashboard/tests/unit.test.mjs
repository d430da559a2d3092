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
import { ALERT_ACTION_PATHS, api } from '../src/api.js';
import { alertDetail, alertNumber, alertTitle, gatewayValues, historyNote, incidentTitle, rejectReason, resolutionText, RULES } from '../src/texts.js';
import { isLoopbackHost, labelTarget } from '../src/label.js';
import { putAlert, subscribe } from '../src/store.js';
import {
  complianceColumns,
  flowColumns,
  gapRows,
  periodDays,
  periodQuery,
  presetPeriod,
  rankingRows,
  reportFileName,
  responseRows,
  terminalRow,
} from '../src/reports.js';

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
  // A resolved alert takes notes only, from those who may add one.
  assert.deepEqual(alertActions(alert({ state: 'resolved' }), 'admin'), ['note']);
  assert.deepEqual(alertActions(alert({ state: 'resolved' }), 'field'), ['note']);
  assert.deepEqual(alertActions(alert({ state: 'resolved' }), 'inspector'), []);
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

test('each alert action posts to the gateway route of that action (a note to /notes)', async () => {
  const calls = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    calls.push([init.method, url, init.body]);
    return new Response('{"id":7}', { status: 200, headers: { 'Content-Type': 'application/json' } });
  };
  try {
    for (const action of ['acknowledge', 'assign', 'dispatch', 'arrive', 'resolve', 'note']) await api.alertAction(7, action, { note: 'x' });
  } finally {
    globalThis.fetch = realFetch;
  }
  // The routes of gateway/src/alerts/api.rs.
  assert.deepEqual(
    calls.map(([m, u]) => `${m} ${u}`),
    ['acknowledge', 'assign', 'dispatch', 'arrive', 'resolve', 'notes'].map((p) => `POST /api/v1/alerts/7/${p}`),
  );
  assert.equal(calls[5][2], '{"note":"x"}');
  assert.deepEqual(Object.keys(ALERT_ACTION_PATHS).sort(), ['acknowledge', 'arrive', 'assign', 'dispatch', 'note', 'resolve']);
  assert.throws(() => api.alertAction(7, 'notes', {}), /no alert action/);
});

const zhf = makeFormat('zh-CN', 'Asia/Shanghai');
const enf = makeFormat('en', 'Asia/Shanghai');
const EN = { lang: 'en', fmt: enf };
const ZH = { lang: 'zh-CN', fmt: zhf };
const hasHan = (s) => /\p{Script=Han}/u.test(s);

test('alert titles and details follow the UI language, not the gateway', () => {
  // As a gateway with alerts.language = "zh" stores it (gateway/src/alerts/text.rs).
  const turb = alert({ severity: 'alarm', title: '出水浊度超标', detail: '浊度 20.607304 NTU，高于 10 NTU 已 30 分钟', value: 20.607304, threshold: 10 });
  assert.equal(alertTitle(turb, EN), 'Effluent turbidity over the alarm limit');
  assert.equal(alertTitle({ ...turb, severity: 'warning' }, EN), 'Effluent turbidity high');
  assert.equal(alertDetail(turb, EN), 'Turbidity 20.6 NTU, above the limit of 10 NTU');
  assert.equal(alertTitle(turb, ZH), '出水浊度超标');
  assert.equal(alertDetail(turb, ZH), '浊度 20.6 NTU，高于限值 10 NTU');
  assert.equal(alertNumber(turb, turb.value, EN), '20.6 NTU');

  const desludge = alert({ rule: 'desludge', severity: 'maintenance', detail: '泥位 81.25 %，达到清掏线 80 % 已 60 分钟', value: 81.25, threshold: 80 });
  assert.equal(alertTitle(desludge, EN), 'Desludging due');
  assert.equal(alertDetail(desludge, EN), 'Sludge 81 % of the tank depth, at or above the desludging line of 80 %');
  assert.equal(alertDetail(desludge, ZH), '泥位 81 %，达到清掏线 80 %');

  const noFlow = alert({ rule: 'no_flow', detail: '流量 0 m3/h，不超过 0.05 m3/h 已 6.0 小时', value: 0, threshold: 0.05 });
  assert.equal(alertDetail(noFlow, EN), 'Flow 0 m³/h, at most 0.05 m³/h');
  const over = alert({ rule: 'overflow', detail: 'flow 9.87654 m3/h, above 5 m3/h for 30 min', value: 9.87654, threshold: 5 });
  assert.equal(alertTitle(over, ZH), '流量超过设计能力');
  assert.equal(alertDetail(over, ZH), '流量 9.88 m³/h，超过 5 m³/h');

  const offline = alert({ rule: 'offline', detail: '已 35 分钟未收到数据', value: 2100, threshold: 900 });
  assert.equal(alertTitle(offline, EN), 'Terminal offline');
  assert.equal(alertDetail(offline, EN), 'Nothing received for 35 min');
  assert.equal(alertDetail(offline, ZH), '已 35 分钟未收到数据');
  assert.equal(alertNumber(offline, offline.threshold, EN), '15 min');
  const will = alert({ rule: 'offline', detail: '终端连接中断（遗嘱消息：离线）', value: 120, threshold: 900 });
  assert.equal(alertDetail(will, EN), "The node's connection dropped (last will: offline)");

  // Which quantity froze is in the gateway's detail only, by its unit.
  const stuck = alert({ rule: 'stuck_sensor', severity: 'maintenance', detail: '浊度 3.21 NTU、流量 1.5 m3/h 已 6.0 小时完全不变', value: 3.21, threshold: null });
  assert.equal(alertTitle(stuck, EN), 'Sensor value stuck');
  assert.equal(alertDetail(stuck, EN), 'Reading unchanged: Turbidity 3.2 NTU, Flow 1.5 m³/h');
  assert.equal(alertDetail(stuck, ZH), '读数完全不变：浊度 3.2 NTU、流量 1.5 m³/h');
  assert.equal(alertNumber(stuck, stuck.value, EN), '3.2 NTU');

  const fault = alert({ rule: 'sensor_fault', detail: '浊度无响应（no_response）、泥位超出量程（out_of_range）', value: null, threshold: null });
  assert.equal(alertTitle(fault, EN), 'Sensor fault');
  assert.equal(alertDetail(fault, EN), 'Turbidity: no response, Sludge: out of range');
  assert.equal(alertDetail({ ...fault, detail: 'turbidity no response (no_response)' }, ZH), '浊度无响应');

  const gap = alert({ rule: 'data_gap', severity: 'maintenance', detail: '缺少 5 条消息：boot 3 seq 10-13, boot 4 seq 2', value: 5, threshold: null });
  assert.equal(alertTitle(gap, EN), 'Data missing');
  assert.equal(alertDetail(gap, EN), '5 messages missing: boot 3, messages 10–13, boot 4, message 2');
  assert.equal(alertDetail(gap, ZH), '缺少 5 条消息：第 3 次启动的第 10–13 条、第 4 次启动的第 2 条');
  assert.equal(alertNumber(gap, gap.value, EN), '5 messages');

  // Every rule the gateway has gets an English title and detail without a Chinese character.
  for (const a of [turb, desludge, noFlow, over, offline, will, stuck, fault, gap]) {
    assert.equal(hasHan(alertTitle(a, EN) + alertDetail(a, EN)), false, `${a.rule}: ${alertDetail(a, EN)}`);
  }
  assert.deepEqual(RULES.filter((r) => !(`alertTitle.${r}` in en && `alertTitle.${r}` in zh)), []);
});

test("a rule the dashboard does not know keeps the gateway's words", () => {
  const odd = alert({ rule: 'ph', title: 'pH 偏低', detail: 'pH 5.2', value: 5.2, threshold: 6 });
  assert.equal(alertTitle(odd, EN), 'pH 偏低');
  assert.equal(alertDetail(odd, EN), 'pH 5.2');
  assert.equal(alertNumber(odd, odd.value, EN), '5.2');
  // A known rule whose numbers are missing falls back the same way.
  assert.equal(alertDetail(alert({ detail: '浊度偏高', value: null, threshold: null }), EN), '浊度偏高');
});

test("incident titles and the gateway's own resolution notes follow the UI language", () => {
  const inc = { id: 1, kind: 'offline', title: '3 个终端同时离线', terminals: ['HY-001', 'HY-002', 'HY-003'] };
  assert.equal(incidentTitle(inc, EN), '3 terminals offline together');
  assert.equal(incidentTitle(inc, ZH), '3 个终端同时离线');
  assert.equal(incidentTitle({ ...inc, kind: 'flood', title: '洪水' }, EN), '洪水');
  const cleared = alert({ state: 'resolved', resolved_by: 'weir', resolution_note: '条件已解除: 浊度 3.456 NTU' });
  assert.equal(resolutionText(cleared, EN), 'Condition cleared: Turbidity 3.5 NTU');
  assert.equal(resolutionText({ ...cleared, resolution_note: '条件已解除' }, EN), 'Condition cleared');
  assert.equal(resolutionText({ ...cleared, rule: 'offline', resolution_note: '终端恢复通信' }, EN), 'The node is reporting again');
  assert.equal(resolutionText({ ...cleared, rule: 'data_gap', resolution_note: 'the missing messages arrived' }, ZH), '缺失的消息已补齐');
  // A person's note is theirs.
  assert.equal(resolutionText({ ...cleared, resolved_by: 'li', resolution_note: '已清洗探头' }, EN), '已清洗探头');
  assert.deepEqual(gatewayValues('flow 1.5 m3/h, totaliser 12 m3, -71 dBm'), [['flow_m3h', 1.5], ['volume_m3', 12], ['rssi_dbm', -71]]);
});

test("the gateway's own notes in an alert's history follow the UI language; people's stay as written", () => {
  const turb = alert({ severity: 'alarm', value: 30, threshold: 20 });
  const weir = (action, note) => ({ at: '2026-11-22T07:00:00Z', who: 'weir', action, note });
  assert.equal(historyNote(turb, weir('opened', '浊度 250 NTU，高于 20 NTU 已 30 分钟'), EN), 'Turbidity 250 NTU, above the limit of 20 NTU');
  assert.equal(historyNote(turb, weir('severity', 'turbidity 25.04 NTU, above 20 NTU for 30 min'), ZH), '浊度 25 NTU，高于限值 20 NTU');
  assert.equal(historyNote(turb, weir('resolved', '条件已解除: 浊度 3 NTU'), EN), 'Condition cleared: Turbidity 3 NTU');
  assert.equal(historyNote(alert({ rule: 'offline' }), weir('opened', '已 35 分钟未收到数据'), EN), 'Nothing received for 35 min');
  assert.equal(historyNote(alert({ rule: 'offline' }), weir('opened', '终端连接中断（遗嘱消息：离线）'), EN), "The node's connection dropped (last will: offline)");
  assert.equal(historyNote(alert({ rule: 'data_gap' }), weir('opened', '缺少 2 条消息：boot 3 seq 4-5'), EN), '2 messages missing: boot 3, messages 4–5');
  assert.equal(historyNote(alert({ rule: 'stuck_sensor' }), weir('opened', '流量 1.39 m3/h 已 6.0 小时完全不变'), EN), 'Reading unchanged: Flow 1.39 m³/h');
  assert.equal(historyNote(turb, { ...weir('note', '检查探头'), who: 'li' }, EN), '检查探头');
  assert.equal(historyNote(turb, { ...weir('opened', '说不清'), who: 'li' }, EN), '说不清');
  assert.equal(historyNote(alert({ rule: 'ph' }), weir('opened', 'pH 5.2'), EN), 'pH 5.2');
});

test('refused messages give their reason in words, or the code when it is new', () => {
  // Every reason code of firmware/contract/src/error.rs, and the gateway's unknown_terminal.
  const codes = ['empty', 'too_large', 'unknown_encoding', 'bad_json', 'bad_binary', 'trailing_bytes', 'buffer_full', 'no_readings', 'too_many_readings', 'not_finite', 'below_min', 'above_max', 'bad_timestamp', 'too_early', 'in_future', 'not_ascending', 'value_and_fault', 'repeated', 'bad_terminal_id', 'bad_topic', 'out_of_range', 'unknown_terminal'];
  assert.deepEqual(codes.filter((c) => !(`reject.${c}` in en && `reject.${c}` in zh)), []);
  assert.equal(rejectReason('above_max', EN), "Value above the sensor's range");
  assert.equal(rejectReason('above_max', ZH), '数值高于量程');
  assert.equal(rejectReason('some_new_reason', EN), 'some_new_reason');
});

test("a cabinet label points at the configured dashboard, and warns when it would point at this computer", () => {
  for (const host of ['127.0.0.1', '127.8.9.10', 'localhost', 'LOCALHOST', 'weir.localhost', '[::1]', '::1', '0.0.0.0']) assert.equal(isLoopbackHost(host), true, host);
  for (const host of ['192.168.1.20', 'weir.example.cn', '10.0.0.1', '128.0.0.1', 'localhost.example.com', '']) assert.equal(isLoopbackHost(host), false, host);
  assert.deepEqual(labelTarget({ dashboardUrl: 'http://weir.example.cn:8080/', origin: 'http://127.0.0.1:8080', id: 'HY-001' }), {
    url: 'http://weir.example.cn:8080/terminals/HY-001',
    host: 'weir.example.cn',
    loopback: false,
  });
  assert.deepEqual(labelTarget({ dashboardUrl: '', origin: 'http://127.0.0.1:8080', id: 'HY 2' }), { url: 'http://127.0.0.1:8080/terminals/HY%202', host: '127.0.0.1', loopback: true });
  assert.deepEqual(labelTarget({ dashboardUrl: undefined, origin: 'http://[::1]:8080', id: 'A' }), { url: 'http://[::1]:8080/terminals/A', host: '[::1]', loopback: true });
  assert.equal(labelTarget({ dashboardUrl: null, origin: 'https://weir.example.cn', id: 'A' }).loopback, false);
});

test("the live feed's echo of an action's answer redraws nothing; a real change does", () => {
  const seen = [];
  const off = subscribe('alert', ({ alert, previous }) => seen.push([alert.state, previous?.state ?? null]));
  try {
    const a = alert({ id: 4242, state: 'acknowledged' });
    putAlert(a);
    putAlert(structuredClone(a));
    putAlert({ ...a, state: 'resolved' });
  } finally {
    off();
  }
  assert.deepEqual(seen, [['acknowledged', null], ['resolved', 'acknowledged']]);
});

// --- Reports page (src/reports.js) ---

const SH = 'Asia/Shanghai';

function termReport(id, rate, extra = {}) {
  return {
    terminal: id,
    name: `${id} name`,
    compliance: { basis: 'time', limit_ntu: 10, rate, samples: 100, samples_within: 90, hours_measured: 10, hours_within: 9 },
    completeness: {
      interval_s: 60,
      expected: 1000,
      received: 950,
      rate: 0.95,
      with_faults: 2,
      gaps: [
        { start: '2026-11-02T01:00:00Z', end: '2026-11-02T01:30:00Z', minutes: 30 },
        { start: '2026-11-03T16:00:00Z', end: '2026-11-03T16:45:00Z', minutes: 45 },
      ],
    },
    uptime: 0.99,
    hours_in_alarm: 1.5,
    alerts_raised: 3,
    alerts_by_rule: { turbidity: 3 },
    response: {
      acknowledge: { n: 3, median_min: 4, p90_min: 9, within_target: null },
      dispatch: { n: 2, median_min: 20, p90_min: 50, within_target: 0.5 },
      arrive: { n: 1, median_min: 90, p90_min: 90, within_target: 1 },
      resolve: { n: 0, median_min: null, p90_min: null, within_target: null },
    },
    daily_flow: [
      { day: '2026-11-01', volume_m3: 120.5, source: 'totaliser' },
      { day: '2026-11-02', volume_m3: 100, source: 'integrated' },
    ],
    ...extra,
  };
}

test('report presets: last month and this month in the site zone, custom dates inclusive', () => {
  // 2026-12-01 01:30 in Shanghai is still November 30 in UTC.
  const now = Date.parse('2026-11-30T17:30:00Z');
  const last = presetPeriod('lastMonth', now, SH);
  assert.equal(rfc3339(last.from), '2026-10-31T16:00:00Z');
  assert.equal(rfc3339(last.to), '2026-11-30T16:00:00Z');
  const month = presetPeriod('thisMonth', now, SH);
  assert.equal(rfc3339(month.from), '2026-11-30T16:00:00Z');
  assert.ok(month.to > now && month.to - now <= 60000);
  // January: last month is December of the year before.
  const jan = presetPeriod('lastMonth', Date.parse('2027-01-15T04:00:00Z'), SH);
  assert.equal(rfc3339(jan.from), '2026-11-30T16:00:00Z');
  assert.equal(rfc3339(jan.to), '2026-12-31T16:00:00Z');
  const custom = presetPeriod('custom', now, SH, { fromDate: '2026-11-03', toDate: '2026-11-05' });
  assert.equal(rfc3339(custom.from), '2026-11-02T16:00:00Z');
  assert.equal(rfc3339(custom.to), '2026-11-05T16:00:00Z');
  assert.equal(presetPeriod('custom', now, SH, { fromDate: '2026-11-05', toDate: '2026-11-03' }), null);
  assert.equal(presetPeriod('custom', now, SH, { fromDate: '2025-01-01', toDate: '2026-11-03' }), null, 'over 366 days');
  assert.equal(presetPeriod('custom', now, SH, { fromDate: '', toDate: '2026-11-03' }), null);
});

test('the report query leaves last month to the API and sends other periods as RFC 3339', () => {
  const p = { from: Date.parse('2026-11-02T16:00:00Z'), to: Date.parse('2026-11-05T16:00:00Z') };
  assert.deepEqual(periodQuery('lastMonth', p), {});
  assert.deepEqual(periodQuery('custom', p), { from: '2026-11-02T16:00:00Z', to: '2026-11-05T16:00:00Z' });
  const days = periodDays({ from: '2026-10-31T16:00:00Z', to: '2026-11-30T16:00:00Z', timezone: SH }, SH);
  assert.deepEqual(days, { first: '2026-11-01', last: '2026-11-30' });
  assert.equal(reportFileName(days), 'weir-county-report_2026-11-01_2026-11-30.csv');
});

test('the ranking table follows the API ranking and sums each terminal gaps', () => {
  const county = {
    ranking: ['HY-002', 'HY-001', 'HY-003'],
    terminals: [termReport('HY-001', 0.99), termReport('HY-002', 0.8), termReport('HY-003', null, { response: {} }), termReport('HY-004', 1)],
  };
  const rows = rankingRows(county);
  assert.deepEqual(rows.map((r) => [r.rank, r.id]), [[1, 'HY-002'], [2, 'HY-001'], [3, 'HY-003'], [4, 'HY-004']]);
  assert.deepEqual(rows[0], {
    rank: 1,
    id: 'HY-002',
    name: 'HY-002 name',
    compliance: 0.8,
    completeness: 0.95,
    gaps: 2,
    gapMinutes: 75,
    uptime: 0.99,
    hoursInAlarm: 1.5,
    alerts: 3,
    dispatchWithin: 0.5,
    dispatchN: 2,
  });
  assert.equal(rows[2].dispatchWithin, null);
  assert.equal(terminalRow(termReport('X', null)).compliance, null);
  const cols = complianceColumns(rows);
  assert.deepEqual(cols, { x: [0, 1, 2, 3], y: [80, 99, null, 100], ids: ['HY-002', 'HY-001', 'HY-003', 'HY-004'] });
});

test('a terminal report gives flow columns by local day, its gaps and response rows', () => {
  const r = termReport('HY-001', 0.9);
  const flow = flowColumns(r, SH);
  assert.deepEqual(flow.x, [Date.parse('2026-10-31T16:00:00Z') / 1000, Date.parse('2026-11-01T16:00:00Z') / 1000]);
  assert.deepEqual(flow.y, [120.5, 100]);
  assert.equal(flow.source, 'mixed');
  assert.deepEqual(flow.counts, { totaliser: 1, integrated: 1 });
  assert.equal(flow.total, 220.5);
  assert.equal(flowColumns({ ...r, daily_flow: [r.daily_flow[1]] }, SH).source, 'integrated');
  assert.equal(flowColumns({ ...r, daily_flow: [] }, SH).source, null);
  assert.deepEqual(gapRows(r)[1], { start: Date.parse('2026-11-03T16:00:00Z'), end: Date.parse('2026-11-03T16:45:00Z'), minutes: 45 });
  const resp = responseRows(r);
  assert.deepEqual(resp.map((s) => s.step), ['acknowledge', 'dispatch', 'arrive', 'resolve']);
  assert.deepEqual(resp[1], { step: 'dispatch', n: 2, median: 20, p90: 50, within: 0.5 });
  assert.deepEqual(resp[3], { step: 'resolve', n: 0, median: null, p90: null, within: null });
});

test('whole dates are formatted in the site zone', () => {
  const ts = Date.parse('2026-11-30T17:30:00Z') / 1000;
  assert.equal(makeFormat('en', SH).date(ts), '12/01/2026');
  assert.equal(makeFormat('zh-CN', SH).date(ts), '2026/12/01');
  assert.equal(makeFormat('en', SH).date(null), '—');
});

test('firmware rollouts: counts in update order, percent downloaded, every terminal listed', async () => {
  const { firmwareRows, isUnderWay, stateCounts, targetPercent } = await import('../src/firmware.js');
  const rollout = { version: 'weir-node 0.2.0', terminals: 5, states: { rolled_back: 1, installed: 3, downloading: 1 }, progress: 0.9 };
  assert.deepEqual(stateCounts(rollout), [['downloading', 1], ['installed', 3], ['rolled_back', 1]]);
  assert.equal(isUnderWay(rollout), true);
  assert.equal(isUnderWay({ ...rollout, states: { installed: 4, rolled_back: 1 } }), false);
  assert.equal(targetPercent({ state: 'downloading', offset: 2048, size: 8192 }), 25);
  assert.equal(targetPercent({ state: 'offered', offset: 0, size: 8192 }), 0);
  assert.equal(targetPercent({ state: 'rolled_back', offset: 8192, size: 8192 }), 100);
  const rows = firmwareRows(
    [{ id: 'HY-002', status: { firmware: 'weir-node 0.1.0' } }, { id: 'HY-001', status: null }],
    [{ terminal: 'HY-002', version: 'weir-node 0.2.0', state: 'offered' }],
  );
  assert.deepEqual(rows.map((r) => [r.id, r.running, r.target?.state ?? null]), [['HY-001', null, null], ['HY-002', 'weir-node 0.1.0', 'offered']]);
});
