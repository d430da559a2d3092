// The gateway's HTTP API (docs/api.md), same-origin so it works wherever the gateway serves us.

const BASE = '/api/v1';

/** A failed API call: HTTP status, the API's error code and its sentence. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};
/** Called when a request comes back 401: the session ended. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

async function request(method, path, body, { raw = false, quiet401 = false, file = null } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  // Every request that changes something says it is JSON, even without a body: the gateway
  // refuses any other with the session cookie (a cross-site form cannot send JSON). A picture
  // goes as itself, with its own type (image/jpeg, image/png), which a form cannot send either.
  if (file) {
    init.headers['Content-Type'] = file.type || 'application/octet-stream';
    init.body = file;
  } else {
    if (method !== 'GET') init.headers['Content-Type'] = 'application/json';
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch (e) {
    throw new ApiError(0, 'network', e.message);
  }
  if (!res.ok) {
    let code = null;
    let detail = null;
    try {
      const j = await res.json();
      code = j.error;
      detail = j.detail;
    } catch {
      // Not the API's error shape (a proxy's page, say): the status says enough.
    }
    if (res.status === 401 && !quiet401) onUnauthorized();
    throw new ApiError(res.status, code, detail);
  }
  if (raw) return res;
  return res.json();
}

/** The path of each alert action under `/alerts/{id}/` (gateway/src/alerts/api.rs). */
export const ALERT_ACTION_PATHS = {
  acknowledge: 'acknowledge',
  assign: 'assign',
  dispatch: 'dispatch',
  arrive: 'arrive',
  resolve: 'resolve',
  note: 'notes',
};

function alertActionPath(id, action) {
  const path = ALERT_ACTION_PATHS[action];
  if (!path) throw new Error(`no alert action ${action}`);
  return `/alerts/${encodeURIComponent(id)}/${path}`;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const api = {
  login: (username, password) => request('POST', '/login', { username, password }, { quiet401: true }),
  logout: () => request('POST', '/logout'),
  me: () => request('GET', '/me', undefined, { quiet401: true }),
  site: () => request('GET', '/site'),
  terminals: () => request('GET', '/terminals'),
  readings: (id, params) => request('GET', `/terminals/${encodeURIComponent(id)}/readings${query(params)}`),
  readingsCsv: async (id, params) =>
    (await request('GET', `/terminals/${encodeURIComponent(id)}/readings${query({ ...params, format: 'csv' })}`, undefined, { raw: true })).text(),
  csvUrl: (id, params) => `${BASE}/terminals/${encodeURIComponent(id)}/readings${query({ ...params, format: 'csv' })}`,
  pictures: (id, limit = 12) => request('GET', `/terminals/${encodeURIComponent(id)}/pictures${query({ limit })}`),
  uploadPicture: (id, file) => request('POST', `/terminals/${encodeURIComponent(id)}/pictures`, undefined, { file }),
  deadLetters: (limit = 100) => request('GET', `/dead-letters${query({ limit })}`),
  alerts: (params = {}) => request('GET', `/alerts${query(params)}`),
  alert: (id) => request('GET', `/alerts/${encodeURIComponent(id)}`),
  alertAction: (id, action, body) => request('POST', alertActionPath(id, action), body),
  incidents: (state = 'active') => request('GET', `/incidents${query({ state })}`),
  crews: () => request('GET', '/crews'),
  countyReport: (params = {}) => request('GET', `/reports/county${query(params)}`),
  terminalReport: (id, params = {}) => request('GET', `/reports/terminals/${encodeURIComponent(id)}${query(params)}`),
  countyReportCsvUrl: (params = {}) => `${BASE}/reports/county${query({ ...params, format: 'csv' })}`,
  firmware: () => request('GET', '/firmware'),
  eventsUrl: `${BASE}/events`,
};
