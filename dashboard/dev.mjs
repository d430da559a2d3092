// Development server: serves dist/ like the gateway will (index.html for every path that is
// not a file and not /api) and passes /api and /healthz to a running gateway.
//   WEIR_URL=http://127.0.0.1:18080 PORT=5173 npm run dev

import http from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, process.env.WEIR_DASHBOARD_OUT || 'dist');
const target = new URL(process.env.WEIR_URL || 'http://127.0.0.1:8080');
const port = Number(process.env.PORT || 5173);
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.txt': 'text/plain' };

function proxy(req, res) {
  const upstream = http.request(
    { host: target.hostname, port: target.port || 80, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
    (up) => {
      res.writeHead(up.statusCode, up.headers);
      // Piped without buffering, so the SSE feed streams through.
      up.pipe(res);
    },
  );
  upstream.on('error', (e) => {
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'bad_gateway', detail: `the gateway at ${target.origin} did not answer: ${e.message}` }));
  });
  req.pipe(upstream);
}

async function serveFile(req, res) {
  const url = new URL(req.url, 'http://x');
  let file = path.join(root, path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, ''));
  if (!file.startsWith(root)) file = root;
  try {
    if (!(await stat(file)).isFile()) throw new Error('not a file');
  } catch {
    file = path.join(root, 'index.html');
  }
  const body = await readFile(file);
  res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
  res.end(body);
}

http
  .createServer((req, res) => {
    if (req.url.startsWith('/api/') || req.url === '/healthz' || req.url === '/metrics') return proxy(req, res);
    serveFile(req, res).catch((e) => {
      res.writeHead(500);
      res.end(String(e));
    });
  })
  .listen(port, '127.0.0.1', () => console.log(`dashboard on http://127.0.0.1:${port}/, API from ${target.origin}`));
