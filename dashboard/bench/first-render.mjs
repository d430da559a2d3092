// The overview's first render, measured in Debian's Chromium against a running gateway.
//
//   WEIR_URL=http://127.0.0.1:8080 WEIR_USER=admin WEIR_PASSWORD=... npm run bench
//
// Logs in once, then loads the overview WEIR_BENCH_LOADS times (default 20), as an operator's
// wall display does, and prints each load's `performance` measures set by the overview, then
// the minimum, median, 90th percentile and maximum of each. The target is a median under
// 1000 ms from navigation start to the overview in the page (`weir:overview:since-navigation`).
// This is a benchmark, not a test: it prints figures and says whether the median meets the
// target; it fails only when the page cannot be measured at all.

import { gatewayEnv } from '../tests/support/env.mjs';
import { launch, login, newPage } from '../tests/support/browser.mjs';

const TARGET_MS = 1000;
const MEASURES = ['weir:overview:since-navigation', 'weir:overview:until-painted', 'weir:overview:render'];

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const env = gatewayEnv();
const loads = Number(process.env.WEIR_BENCH_LOADS || 20);
if (!Number.isInteger(loads) || loads < 1) throw new Error(`WEIR_BENCH_LOADS must be a whole number of loads, not ${process.env.WEIR_BENCH_LOADS}`);

const browser = await launch();
try {
  const { page } = await newPage(browser);
  await login(page, env);
  await page.waitForSelector('.tiles a[data-terminal]');
  const tiles = await page.locator('.tiles a[data-terminal]').count();
  const runs = [];
  for (let i = 0; i < loads; i++) {
    await page.goto(`${env.url}/`);
    await page.waitForFunction((n) => document.querySelectorAll('.tiles a[data-terminal]').length === n, tiles);
    await page.waitForFunction(() => performance.getEntriesByName('weir:overview:until-painted').length === 1);
    const timing = await page.evaluate(() =>
      Object.fromEntries(performance.getEntriesByType('measure').filter((m) => m.name.startsWith('weir:overview')).map((m) => [m.name, m.duration])),
    );
    runs.push(timing);
    console.log(`load ${String(i + 1).padStart(2)}: ${MEASURES.map((m) => `${m.slice('weir:overview:'.length)} ${Math.round(timing[m])} ms`).join(', ')}`);
  }
  console.log(`\nthe overview with ${tiles} terminals, ${loads} loads (ms): min / median / p90 / max`);
  for (const m of MEASURES) {
    const v = runs.map((r) => r[m]).filter(Number.isFinite).sort((a, b) => a - b);
    if (v.length !== runs.length) throw new Error(`${m} was missing in ${runs.length - v.length} of ${runs.length} loads`);
    console.log(`${m.padEnd(32)} ${[v[0], quantile(v, 0.5), quantile(v, 0.9), v[v.length - 1]].map((x) => Math.round(x)).join(' / ')}`);
  }
  const median = quantile(runs.map((r) => r['weir:overview:since-navigation']).sort((a, b) => a - b), 0.5);
  console.log(
    `\ntarget: median since-navigation under ${TARGET_MS} ms: ${median < TARGET_MS ? 'met' : 'NOT met'} (${Math.round(median)} ms); load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`,
  );
} finally {
  await browser.close();
}
