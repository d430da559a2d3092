// What the dashboard knows: site, user, terminals, active alerts and incidents, kept current
// by the gateway's live feed (SSE) with a slow reload as a safety net.

import { api, ApiError } from './api.js';
import { isActive } from './state.js';
import { toMs } from './format.js';

export const store = {
  site: { name: 'Weir', timezone: 'Asia/Shanghai' },
  me: null,
  terminals: new Map(),
  /** Alerts by id: the active ones, plus any that changed while we watched. */
  alerts: new Map(),
  incidents: new Map(),
  /** False when the gateway answers 404 for the alert API (an older gateway). */
  alertsAvailable: true,
  /** `live` (SSE open), `connecting`, or `down` (no feed: falling back to reloads). */
  live: 'connecting',
};

const listeners = new Map();

/** Calls `fn(payload)` on `topic` (`terminal`, `terminals`, `alert`, `alerts`, `incident`,
 * `live`); returns the function that stops it. */
export function subscribe(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic).delete(fn);
}

function emit(topic, payload) {
  for (const fn of listeners.get(topic) || []) {
    try {
      fn(payload);
    } catch (e) {
      console.error(`listener of ${topic} failed`, e);
    }
  }
}

export function activeAlerts() {
  return [...store.alerts.values()].filter(isActive);
}

export async function loadTerminals() {
  const list = await api.terminals();
  store.terminals = new Map(list.map((t) => [t.id, t]));
  emit('terminals');
}

export async function loadAlerts() {
  try {
    const [alerts, incidents] = await Promise.all([api.alerts({ state: 'active' }), api.incidents('active')]);
    store.alerts = new Map(alerts.map((a) => [a.id, a]));
    store.incidents = new Map(incidents.map((i) => [i.id, i]));
    store.alertsAvailable = true;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
    store.alertsAvailable = false;
    store.alerts = new Map();
    store.incidents = new Map();
  }
  emit('alerts');
}

export function loadAll() {
  return Promise.all([loadTerminals(), loadAlerts()]);
}

/** Puts an alert the API returned (after an action) into the store. */
export function putAlert(alert) {
  const previous = store.alerts.get(alert.id);
  // The live feed echoes what an action's answer already put here: nothing changed, so
  // nothing is redrawn (a card redrawn under a user would take the form they are filling in).
  if (previous && JSON.stringify(previous) === JSON.stringify(alert)) return;
  store.alerts.set(alert.id, alert);
  emit('alert', { alert, previous });
}

function onReading({ terminal, reading }) {
  const t = store.terminals.get(terminal);
  if (!t || !reading) return;
  // A node that replays its queue sends old readings after new ones: keep the newest.
  if (!t.latest || (toMs(reading.ts) ?? 0) >= (toMs(t.latest.ts) ?? 0)) t.latest = reading;
  t.last_seen = Math.floor(Date.now() / 1000);
  emit('terminal', t.id);
}

function onStatus({ terminal, status }) {
  const t = store.terminals.get(terminal);
  if (!t || !status) return;
  const online = status.online ?? (status.state ? status.state === 'online' : undefined);
  // An offline last will carries only the state: keep what the node said before.
  const merged = { ...(t.status || {}) };
  for (const [k, v] of Object.entries(status)) if (v != null && k !== 'state') merged[k] = v;
  if (online !== undefined) merged.online = online;
  merged.updated_at = Math.floor(Date.now() / 1000);
  t.status = merged;
  if (online) t.last_seen = merged.updated_at;
  emit('terminal', t.id);
}

function onIncident(incident) {
  store.incidents.set(incident.id, incident);
  emit('incident', incident);
}

let source = null;
let retryTimer = null;
let pollTimer = null;
let retryDelay = 2000;
let everOpen = false;

function setLive(state) {
  if (store.live === state) return;
  store.live = state;
  emit('live', state);
}

function parse(fn) {
  return (e) => {
    let data;
    try {
      data = JSON.parse(e.data);
    } catch {
      console.warn('live event is not JSON', e.type, e.data);
      return;
    }
    fn(data);
  };
}

function connect() {
  clearTimeout(retryTimer);
  source = new EventSource(api.eventsUrl);
  setLive('connecting');
  source.onopen = () => {
    setLive('live');
    retryDelay = 2000;
    // Events sent while we were away are lost: reload what they would have changed.
    if (everOpen) loadAll().catch(() => {});
    everOpen = true;
  };
  source.addEventListener('reading', parse(onReading));
  source.addEventListener('status', parse(onStatus));
  source.addEventListener('alert', parse(putAlert));
  source.addEventListener('incident', parse(onIncident));
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (not an event stream, or refused): retry ourselves, slower each time.
      setLive('down');
      source.close();
      retryTimer = setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 60000);
    } else {
      setLive('connecting');
    }
  };
}

/** Opens the live feed; reloads every 30 s while it is down and every 5 min while it is up
 * (a terminal going silent produces no event, and the registry may change). */
export function startLive() {
  stopLive();
  everOpen = false;
  connect();
  let last = Date.now();
  pollTimer = setInterval(() => {
    const due = store.live === 'live' ? 300000 : 30000;
    if (Date.now() - last < due) return;
    last = Date.now();
    loadAll().catch(() => {});
  }, 5000);
}

export function stopLive() {
  clearTimeout(retryTimer);
  clearInterval(pollTimer);
  if (source) source.close();
  source = null;
}
