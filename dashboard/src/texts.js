// What alerts, incidents and refused messages say, in the UI's language. The gateway writes an
// alert's title and detail once, in its own configured language (`alerts.language`, Chinese by
// default), so the dashboard builds them again from the alert's data (rule, severity, value,
// threshold) with its dictionaries; a rule it does not know keeps the gateway's words.
// Pure: no DOM, so `node --test` can check them.

import { translate } from './i18n.js';
import { durationParts } from './format.js';

/** The gateway's rules (gateway/src/alerts/model.rs `Rule`). */
export const RULES = ['turbidity', 'desludge', 'no_flow', 'overflow', 'stuck_sensor', 'sensor_fault', 'offline', 'data_gap'];

/** Every quantity of the protocol: unit as shown, digits worth showing, and the unit the
 * gateway writes in its texts (firmware/contract `Quantity::unit`). */
export const QUANTITY_UNITS = {
  flow_m3h: { unit: 'm³/h', digits: 2, gateway: 'm3/h' },
  volume_m3: { unit: 'm³', digits: 1, gateway: 'm3' },
  turbidity_ntu: { unit: 'NTU', digits: 1, gateway: 'NTU' },
  sludge_pct: { unit: '%', digits: 0, gateway: '%' },
  supply_v: { unit: 'V', digits: 1, gateway: 'V' },
  rssi_dbm: { unit: 'dBm', digits: 0, gateway: 'dBm' },
};

/** The quantity an alert's value and threshold are in, by rule (stuck_sensor: whichever
 * quantity froze, read from the gateway's detail). */
const RULE_QUANTITY = { turbidity: 'turbidity_ntu', desludge: 'sludge_pct', no_flow: 'flow_m3h', overflow: 'flow_m3h' };

/** Quantity names as the gateway writes them in either language (gateway/src/alerts/text.rs). */
const GATEWAY_QUANTITY_NAMES = [
  ['累计流量', 'volume_m3'],
  ['流量', 'flow_m3h'],
  ['浊度', 'turbidity_ntu'],
  ['泥位', 'sludge_pct'],
  ['供电电压', 'supply_v'],
  ['信号强度', 'rssi_dbm'],
  ['totaliser', 'volume_m3'],
  ['flow', 'flow_m3h'],
  ['turbidity', 'turbidity_ntu'],
  ['sludge level', 'sludge_pct'],
  ['supply voltage', 'supply_v'],
  ['signal strength', 'rssi_dbm'],
];

const BY_GATEWAY_UNIT = new Map(Object.entries(QUANTITY_UNITS).map(([field, q]) => [q.gateway, field]));

/** `[field, value]` pairs in a gateway text, found by the units it writes after each number
 * (the same in both of its languages): `浊度 3.2 NTU、流量 1.5 m3/h` -> turbidity 3.2, flow 1.5. */
export function gatewayValues(text) {
  const out = [];
  for (const m of String(text || '').matchAll(/(-?\d+(?:\.\d+)?) (m3\/h|m3|NTU|%|V|dBm)(?![\w/])/g)) {
    out.push([BY_GATEWAY_UNIT.get(m[2]), Number(m[1])]);
  }
  return out;
}

function numberIn(fmt, field, v) {
  const q = QUANTITY_UNITS[field];
  return q ? `${fmt.number(v, q.digits)} ${q.unit}` : fmt.number(v, 2);
}

function durationText(lang, seconds) {
  const [n, unit] = durationParts(seconds);
  return translate(lang, `duration.${unit}`, { n });
}

function listOf(lang, items) {
  return items.join(translate(lang, 'list.separator'));
}

function quantityName(lang, field) {
  return translate(lang, `q.${field}`);
}

/** The field of the quantity whose value an alert carries, or null. */
function alertField(alert) {
  if (RULE_QUANTITY[alert.rule]) return RULE_QUANTITY[alert.rule];
  if (alert.rule === 'stuck_sensor') return gatewayValues(alert.detail)[0]?.[0] ?? null;
  return null;
}

/** An alert's value or threshold with its unit and sensible rounding: `20.6 NTU`, `35 min`
 * (offline), `12 messages` (data gap). Null stays null. */
export function alertNumber(alert, v, { lang, fmt }) {
  if (v == null || Number.isNaN(v)) return null;
  if (alert.rule === 'offline') return durationText(lang, v);
  if (alert.rule === 'data_gap') return translate(lang, 'alertText.messages', { n: fmt.number(v, 0) });
  return numberIn(fmt, alertField(alert), v);
}

/** The title of an alert in `lang`; the gateway's own for a rule the dashboard does not know. */
export function alertTitle(alert, { lang }) {
  if (!RULES.includes(alert.rule)) return alert.title || alert.rule;
  const key = alert.rule === 'turbidity' && alert.severity === 'alarm' ? 'alertTitle.turbidity_alarm' : `alertTitle.${alert.rule}`;
  return translate(lang, key);
}

function faultsDetail(alert, lang) {
  // `浊度无响应（no_response）、流量超出量程（out_of_range）` or `turbidity no response
  // (no_response), ...`: the codes in brackets are the protocol's, the same in every language.
  const parts = [];
  for (const segment of String(alert.detail || '').split(/、|, /)) {
    const code = /[(（]([a-z_]+)[)）]/.exec(segment)?.[1];
    if (!code) continue;
    const field = GATEWAY_QUANTITY_NAMES.find(([name]) => segment.trimStart().toLowerCase().startsWith(name))?.[1];
    const fault = translate(lang, `fault.${code}`);
    const what = fault === `fault.${code}` ? code : fault;
    parts.push(field ? translate(lang, 'alertText.fault', { quantity: quantityName(lang, field), fault: what }) : what);
  }
  return parts.length ? listOf(lang, parts) : null;
}

function stuckDetail(alert, lang, fmt) {
  const found = gatewayValues(alert.detail).filter(([field]) => field);
  if (found.length) {
    const list = found.map(([field, v]) => translate(lang, 'alertText.quantityValue', { quantity: quantityName(lang, field), value: numberIn(fmt, field, v) }));
    return translate(lang, 'alertText.stuck_sensor', { values: listOf(lang, list) });
  }
  if (alert.value == null) return null;
  return translate(lang, 'alertText.stuck_sensor', { values: fmt.number(alert.value, 2) });
}

function gapDetail(alert, lang, fmt) {
  if (alert.value == null) return null;
  const n = fmt.number(alert.value, 0);
  // `boot 3 seq 10-12`: the gateway writes these in English whatever its language.
  const ranges = [...String(alert.detail || '').matchAll(/boot (\d+) seq (\d+)(?:-(\d+))?/g)].map((m) =>
    m[3] ? translate(lang, 'alertText.gapRange', { boot: m[1], from: m[2], to: m[3] }) : translate(lang, 'alertText.gapOne', { boot: m[1], seq: m[2] }),
  );
  const more = /…\s*$/.test(alert.detail || '') ? '…' : '';
  return ranges.length ? translate(lang, 'alertText.data_gap.ranges', { n, ranges: listOf(lang, ranges) + more }) : translate(lang, 'alertText.data_gap', { n });
}

/** What was seen, in `lang`, from the alert's rule, value and threshold; the gateway's detail
 * when the rule is unknown or its numbers are missing. */
export function alertDetail(alert, { lang, fmt }) {
  const fallback = alert.detail || '';
  if (!RULES.includes(alert.rule)) return fallback;
  const value = alertNumber(alert, alert.value, { lang, fmt });
  const limit = alertNumber(alert, alert.threshold, { lang, fmt });
  let text = null;
  switch (alert.rule) {
    case 'turbidity':
    case 'desludge':
    case 'no_flow':
    case 'overflow':
      if (value != null && limit != null) text = translate(lang, `alertText.${alert.rule}`, { value, limit });
      break;
    case 'offline':
      if (alert.value != null && alert.threshold != null) {
        // The node's last will counts before the silence does (gateway/src/alerts/rules/offline.rs).
        text = alert.value < alert.threshold ? translate(lang, 'alertText.offline.will') : translate(lang, 'alertText.offline', { d: value });
      }
      break;
    case 'sensor_fault':
      text = faultsDetail(alert, lang);
      break;
    case 'stuck_sensor':
      text = stuckDetail(alert, lang, fmt);
      break;
    case 'data_gap':
      text = gapDetail(alert, lang, fmt);
      break;
  }
  return text ?? fallback;
}

/** The resolution note to show: the gateway's own (`weir` cleared the condition) in `lang`,
 * a person's as written. */
export function resolutionText(alert, { lang, fmt }) {
  const note = alert.resolution_note || '';
  if (alert.resolved_by !== 'weir' || !RULES.includes(alert.rule)) return note;
  if (alert.rule === 'offline') return translate(lang, 'resolution.backOnline');
  if (alert.rule === 'data_gap') return translate(lang, 'resolution.gapFilled');
  const [field, v] = gatewayValues(note)[0] || [];
  if (!field) return translate(lang, 'resolution.cleared');
  return translate(lang, 'resolution.clearedAt', { quantity: quantityName(lang, field), value: numberIn(fmt, field, v) });
}

/** A note the gateway itself (`weir`) left in an alert's history, in `lang`: on opening and on
 * a severity change it is the detail of that moment, on clearing the resolution. Rebuilt from
 * the numbers in it (its units and counts are the same in both of the gateway's languages);
 * anything else stays as written. */
export function historyNote(alert, entry, { lang, fmt }) {
  const note = entry.note || '';
  if (entry.who !== 'weir' || !note || !RULES.includes(alert.rule)) return note;
  if (entry.action === 'resolved') return resolutionText({ ...alert, resolved_by: 'weir', resolution_note: note }, { lang, fmt });
  if (entry.action !== 'opened' && entry.action !== 'severity') return note;
  const firstNumber = /\d+(?:\.\d+)?/.exec(note)?.[0];
  switch (alert.rule) {
    case 'turbidity':
    case 'desludge':
    case 'no_flow':
    case 'overflow': {
      const pairs = gatewayValues(note);
      return pairs.length >= 2 ? alertDetail({ ...alert, value: pairs[0][1], threshold: pairs[1][1] }, { lang, fmt }) : note;
    }
    case 'stuck_sensor':
    case 'sensor_fault':
      return alertDetail({ ...alert, detail: note, value: null }, { lang, fmt });
    case 'data_gap':
      return firstNumber ? alertDetail({ ...alert, detail: note, value: Number(firstNumber) }, { lang, fmt }) : note;
    case 'offline':
      // `已 35 分钟未收到数据` / `nothing received for 35 min`, or the last will's words.
      return firstNumber ? translate(lang, 'alertText.offline', { d: durationText(lang, Number(firstNumber) * 60) }) : translate(lang, 'alertText.offline.will');
    default:
      return note;
  }
}

/** An incident's title in `lang`; the gateway's own for a kind the dashboard does not know. */
export function incidentTitle(incident, { lang }) {
  if (incident.kind === 'offline') return translate(lang, 'incident.offlineTitle', { n: (incident.terminals || []).length });
  return incident.title || incident.kind;
}

/** Why the gateway refused a message (its reason code), in `lang`; the code itself when the
 * dashboard has no words for it. */
export function rejectReason(code, { lang }) {
  const key = `reject.${code}`;
  const s = translate(lang, key);
  return s === key ? String(code) : s;
}
