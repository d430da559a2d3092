// Domain rules the views share: a terminal's colour, alert order, what each role may do.
// Pure: no DOM, so `node --test` can check them.

import { STALE_AFTER_S, toMs } from './format.js';

export const SEVERITIES = ['alarm', 'warning', 'maintenance'];
const SEVERITY_RANK = { alarm: 0, warning: 1, maintenance: 2 };

/** The quantities a tile and a chart show, with the digits worth showing. */
export const QUANTITIES = [
  { field: 'flow_m3h', unit: 'm³/h', digits: 2 },
  { field: 'turbidity_ntu', unit: 'NTU', digits: 1 },
  { field: 'sludge_pct', unit: '%', digits: 0 },
];

export function isActive(alert) {
  return alert.state === 'open' || alert.state === 'acknowledged';
}

/** Whether the node is reporting: its last status did not say offline and a message arrived
 * within STALE_AFTER_S (the gateway's own rule, re-applied as time passes in the browser). */
export function isOnline(terminal, nowMs) {
  if (terminal.last_seen == null) return false;
  if (terminal.status && terminal.status.online === false) return false;
  return nowMs / 1000 - terminal.last_seen <= STALE_AFTER_S;
}

/** `offline` (grey), `alarm` (red), `warning` (yellow, also for maintenance due) or `ok`
 * (green). Offline wins: numbers from a silent node are not evidence that all is well. */
export function terminalState(terminal, activeAlerts, nowMs) {
  if (!isOnline(terminal, nowMs)) return 'offline';
  let worst = 'ok';
  for (const a of activeAlerts) {
    if (a.terminal !== terminal.id || !isActive(a)) continue;
    if (a.severity === 'alarm') return 'alarm';
    worst = 'warning';
  }
  return worst;
}

/** Inbox order: alarms first, then warnings, then maintenance; within each, open before
 * acknowledged, and the longest waiting first. */
export function compareAlerts(a, b) {
  return (
    (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9) ||
    (a.state === 'open' ? 0 : 1) - (b.state === 'open' ? 0 : 1) ||
    (toMs(a.opened_at) ?? 0) - (toMs(b.opened_at) ?? 0) ||
    String(a.id).localeCompare(String(b.id))
  );
}

/** Alerts grouped by incident: [{incident | null, alerts}], incidents first (as ordered by
 * their worst alert), then the alerts that belong to none. */
export function groupByIncident(alerts, incidents) {
  const byId = new Map(incidents.map((i) => [i.id, i]));
  const groups = new Map();
  const loose = [];
  for (const a of [...alerts].sort(compareAlerts)) {
    const inc = a.incident_id != null ? byId.get(a.incident_id) : null;
    if (!inc) {
      loose.push(a);
      continue;
    }
    if (!groups.has(inc.id)) groups.set(inc.id, { incident: inc, alerts: [] });
    groups.get(inc.id).alerts.push(a);
  }
  const out = [...groups.values()];
  for (const a of loose) out.push({ incident: null, alerts: [a] });
  return out.sort((x, y) => compareAlerts(x.alerts[0], y.alerts[0]));
}

/** What each role may do in the UI (the gateway enforces the same, docs/api.md). */
const ROLE_ACTIONS = {
  admin: ['acknowledge', 'assign', 'dispatch', 'arrive', 'resolve', 'note', 'deadLetters', 'uploadPicture', 'firmware'],
  operator: ['acknowledge', 'assign', 'dispatch', 'arrive', 'resolve', 'note', 'deadLetters', 'uploadPicture', 'firmware'],
  field: ['arrive', 'resolve', 'note', 'deadLetters', 'uploadPicture', 'firmware'],
  inspector: [],
};

export function can(role, action) {
  return (ROLE_ACTIONS[role] || []).includes(action);
}

/** The actions `role` can take on `alert` in its present state, in the order of the work.
 * A resolved alert still takes notes (what was found later, a follow-up): the gateway allows it. */
export function alertActions(alert, role) {
  if (!isActive(alert)) return ['note'].filter((a) => can(role, a));
  const wo = alert.work_order;
  const possible = [];
  if (alert.state === 'open') possible.push('acknowledge');
  possible.push('assign');
  if (!wo || !wo.dispatched_at) possible.push('dispatch');
  if (wo && wo.dispatched_at && !wo.arrived_at) possible.push('arrive');
  possible.push('resolve', 'note');
  return possible.filter((a) => can(role, a));
}

/** Whether a crew's zone holds `terminal`: its list names ids, and a trailing `*` matches a
 * prefix (`HY-01*`), as in the gateway's `[alerts.crews]`. */
export function crewCovers(crew, terminal) {
  return (crew.terminals || []).some((p) => (p.endsWith('*') ? terminal.startsWith(p.slice(0, -1)) : p === terminal));
}
