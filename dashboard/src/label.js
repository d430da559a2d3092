// Where a cabinet label's QR code points. Pure: no DOM, so `node --test` can check it.

/** Whether `hostname` (as in `URL.hostname`) names this computer: 127.0.0.0/8, localhost
 * (and `*.localhost`), ::1 or 0.0.0.0. A phone at the cabinet reaches none of them. */
export function isLoopbackHost(hostname) {
  const h = String(hostname || '')
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
  return (
    h === 'localhost' ||
    h.endsWith('.localhost') ||
    /^127(\.\d{1,3}){3}$/.test(h) ||
    h === '::1' ||
    h === '0:0:0:0:0:0:0:1' ||
    h === '0.0.0.0' ||
    h === '::'
  );
}

/** The URL a terminal's label encodes: the gateway's `dashboard_url` (its config's
 * `nodes.dashboard_url`, the address field staff reach) when set, else the address this page
 * was opened at. `loopback` says that URL points at this computer (the label would be useless
 * on a phone), with the host to name in the warning. */
export function labelTarget({ dashboardUrl, origin, id }) {
  const base = String(dashboardUrl || '').trim() || String(origin || '');
  const url = `${base.replace(/\/+$/, '')}/terminals/${encodeURIComponent(id)}`;
  let host = '';
  try {
    host = new URL(url).hostname;
  } catch {
    // Not a URL (the gateway checks its config): nothing to say about the host.
  }
  return { url, host, loopback: isLoopbackHost(host) };
}
