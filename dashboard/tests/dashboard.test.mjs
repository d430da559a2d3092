// The dashboard in a real browser against a real gateway (WEIR_URL, WEIR_USER, WEIR_PASSWORD;
// WEIR_MQTT_URL for the live tests). Screenshots go to test-artifacts/.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';

import { gatewayEnv, mqttEnv } from './support/env.mjs';
import { launch, login, newPage, shot } from './support/browser.mjs';
import { connectMqtt, publishReadings, reading } from './support/mqtt.mjs';

const TIMEOUT = { timeout: 180000 };

describe('the dashboard against a running gateway', TIMEOUT, () => {
  let env;
  let browser;
  let page;
  let errors;
  let terminals;
  let site;
  let driven = null;
  let published = null;
  let alarmId = null;

  const api = async (path, init) => {
    const res = await page.request.fetch(`${env.url}/api/v1${path}`, init);
    if (!res.ok()) throw new Error(`${init?.method || 'GET'} ${path}: HTTP ${res.status()} ${await res.text()}`);
    return res.json();
  };

  /** Plays the node of the driven terminal once. The alert engine raises a turbidity alarm
   * only after the limit has held for `turbidity_sustain_min` (30 by default) on the readings'
   * own clock, and ignores readings older than a terminal's newest; so this sends one message
   * of readings a minute apart over that time plus two minutes, ending now, turbidity far
   * above the limit, the newest with a flow no simulator sends. When the terminal has a newer
   * reading than the start of that window, only one reading is sent (the live test still
   * works) and `published.alarmBlocked` says why the alarm test cannot. */
  async function publishAlarmReadings() {
    if (published) return published;
    const mqtt = mqttEnv();
    const sustainMin = Number(process.env.WEIR_ALARM_SUSTAIN_MIN || 30);
    const fresh = await api('/terminals');
    const newest = (t) => (t.latest ? Date.parse(t.latest.ts) : 0);
    // Without a named terminal, the one that has been quiet longest.
    driven = mqtt.terminal || [...fresh].sort((a, b) => newest(a) - newest(b) || a.id.localeCompare(b.id))[0].id;
    const term = fresh.find((t) => t.id === driven);
    assert.ok(term, `the gateway has no terminal ${driven}`);
    // An alarm left by an earlier run would hide the new one: close it first.
    const before = await page.request.get(`${env.url}/api/v1/alerts?state=active&rule=turbidity&terminal=${encodeURIComponent(driven)}`);
    if (before.ok()) {
      for (const a of await before.json()) {
        await page.request.post(`${env.url}/api/v1/alerts/${a.id}/resolve`, { data: { note: 'dashboard browser test: reset before the run' } });
      }
    }
    const flow = Number((7 + Math.random()).toFixed(2));
    const end = Date.now();
    // The run starts after the terminal's newest reading and must outlast the sustain time.
    const start = Math.max(end - (sustainMin + 2) * 60000, newest(term) + 1000);
    const span = end - start;
    const every = Math.max(60000, Math.ceil(span / 63));
    let alarmBlocked = null;
    const rows = [];
    if (span < sustainMin * 60000 + 30000) {
      alarmBlocked =
        `${driven} has a reading at ${term.latest.ts}: the ${sustainMin} minutes of newer readings the alarm needs ` +
        'would end in the future (the engine ignores readings older than the newest). Drive a terminal quiet for ' +
        'that long (WEIR_TEST_TERMINAL, or the user in WEIR_MQTT_URL), or give it turbidity_sustain_min = 1 under ' +
        `[alerts.terminals.${driven}] in the gateway's config and set WEIR_ALARM_SUSTAIN_MIN=1.`;
    } else {
      for (let t = start; t < end; t += every) rows.push(reading(t, { flow_m3h: 1.2, turbidity_ntu: 250, sludge_pct: 25 }));
    }
    rows.push(reading(end, { flow_m3h: flow, turbidity_ntu: alarmBlocked ? 3 : 250, sludge_pct: 25 }));
    const client = await connectMqtt(mqtt.url);
    try {
      // What a node says when it connects, so an offline will left by an earlier run or a
      // real node cannot keep the terminal grey.
      await client.publish(`${site.topic_prefix || 'weir'}/terminals/${driven}/status`, JSON.stringify({ state: 'online' }), { retain: true });
      await publishReadings(client, driven, rows, { prefix: site.topic_prefix || 'weir' });
    } finally {
      client.close();
    }
    published = { flow, from: start, to: end, alarmBlocked };
    return published;
  }

  let setupError = null;
  before(async () => {
    try {
      env = gatewayEnv();
      browser = await launch();
      ({ page, errors } = await newPage(browser));
    } catch (e) {
      setupError = e;
    }
  });

  after(async () => {
    if (published && driven && page) {
      // Close what the test opened. No further reading: the next run's readings must be newer
      // than this run's newest, so the sooner that is, the sooner the test can run again.
      try {
        const open = await api(`/alerts?state=active&terminal=${encodeURIComponent(driven)}&rule=turbidity`);
        for (const a of open) {
          await page.request.post(`${env.url}/api/v1/alerts/${a.id}/resolve`, { data: { note: 'dashboard browser test: cleared' } });
        }
      } catch {
        // Best effort: the alert API may not exist yet.
      }
    }
    await browser?.close();
  });

  it('logs in and shows every terminal as a tile and on the map, fast', async (t) => {
    if (setupError) throw setupError;
    await login(page, env);
    terminals = await api('/terminals');
    site = await api('/site');
    const expected = env.expectTerminals;
    assert.equal(terminals.length, expected, `the gateway has ${terminals.length} terminals, the test expects ${expected} (WEIR_EXPECT_TERMINALS)`);
    await page.waitForFunction((n) => document.querySelectorAll('.tiles a[data-terminal]').length === n, expected);
    const placed = terminals.filter((x) => Number.isFinite(x.lat) && Number.isFinite(x.lon)).length;
    assert.equal(await page.locator('svg.map .map-point').count(), placed);
    assert.equal(await page.textContent('[data-count="all"]'), String(expected));
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    // Measured on a fresh load of the overview, logged in: what an operator's wall display does.
    await page.goto(`${env.url}/`);
    await page.waitForFunction((n) => document.querySelectorAll('.tiles a[data-terminal]').length === n, expected);
    await page.waitForFunction(() => performance.getEntriesByName('weir:overview:until-painted').length === 1);
    // Every tile is in one of the four states.
    const states = await page.$$eval('.tiles a[data-terminal]', (as) => as.map((a) => a.dataset.state));
    assert.ok(states.every((s) => ['ok', 'warning', 'alarm', 'offline'].includes(s)), states.join());
    const timing = await page.evaluate(() =>
      Object.fromEntries(performance.getEntriesByType('measure').filter((m) => m.name.startsWith('weir:overview')).map((m) => [m.name, Math.round(m.duration)])),
    );
    t.diagnostic(`overview with ${expected} terminals: ${JSON.stringify(timing)} (ms)`);
    console.log(`# first render of the overview with ${expected} terminals: ${JSON.stringify(timing)} (ms)`);
    assert.ok(timing['weir:overview:render'] >= 0, 'the overview marks its first render');
    assert.ok(timing['weir:overview:since-navigation'] < 5000, `first render took ${timing['weir:overview:since-navigation']} ms`);
    await shot(page, '01-overview');
  });

  it('switches between Chinese and English and shows times in the site zone', async () => {
    if (setupError) throw setupError;
    await page.goto(`${env.url}/`);
    await page.waitForSelector('.tiles a[data-terminal]');
    const zhNav = await page.textContent('[data-nav="alerts"]');
    await page.click('[data-action="language"]');
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    const enNav = await page.textContent('[data-nav="alerts"]');
    assert.notEqual(zhNav, enNav);
    assert.match(enNav, /Alerts/);
    assert.match(await page.textContent('footer.foot'), new RegExp(site.timezone.replace('/', '\\/')));
    await page.click('[data-action="language"]');
    await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
  });

  it('shows a reading published by a node without a reload', async () => {
    if (setupError) throw setupError;
    await page.goto(`${env.url}/`);
    await page.waitForSelector('.tiles a[data-terminal]');
    // A quiet gateway may send the feed's headers only with its first keep-alive (15 s).
    await page.waitForSelector('[data-live="live"]', { timeout: 30000 }).catch(() => {
      throw new Error('the live feed (GET /api/v1/events) did not open within 30 s');
    });
    await page.evaluate(() => (window.__notReloaded = true));
    const { flow } = await publishAlarmReadings();
    const tile = page.locator(`.tiles a[data-terminal="${driven}"] [data-field="flow_m3h"] .num`);
    await page.waitForFunction(
      ([id, want]) => document.querySelector(`.tiles a[data-terminal="${id}"] [data-field="flow_m3h"] .num`)?.textContent === want,
      [driven, String(flow)],
      { timeout: 15000 },
    );
    assert.equal(await tile.textContent(), String(flow));
    assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page reloaded');
    await shot(page, '02-live-reading');
  });

  it('shows a simulated alarm live and lets the operator acknowledge it', async () => {
    if (setupError) throw setupError;
    await page.goto(`${env.url}/`);
    await page.waitForSelector('[data-live="live"]', { timeout: 30000 });
    await page.evaluate(() => (window.__notReloaded = true));
    const { alarmBlocked } = await publishAlarmReadings();
    if (alarmBlocked) throw new Error(alarmBlocked);
    await page.waitForSelector(`.tiles a[data-terminal="${driven}"][data-state="alarm"]`, { timeout: env.alarmTimeoutMs }).catch(() => {
      throw new Error(`no alarm on ${driven}'s tile within ${env.alarmTimeoutMs / 1000} s of ${published.to - published.from} ms of readings at 250 NTU (is a simulator feeding it normal readings?)`);
    });
    assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the alarm came by reloading the page');
    await shot(page, '03-alarm');
    await page.click('[data-nav="alerts"]');
    const card = page.locator(`.alert-card[data-terminal="${driven}"][data-state="open"]`).first();
    await card.waitFor();
    const id = await card.getAttribute('data-alert-id');
    await card.locator('button[data-action="acknowledge"]').click();
    await page.waitForSelector(`.alert-card[data-alert-id="${id}"][data-state="acknowledged"]`);
    const stored = await api(`/alerts/${id}`);
    assert.equal(stored.state, 'acknowledged');
    assert.equal(stored.acknowledged_by, env.user);
    await page.locator(`.alert-card[data-alert-id="${id}"] details.history summary`).click();
    await page.waitForFunction((aid) => document.querySelectorAll(`.alert-card[data-alert-id="${aid}"] .history-list li`).length >= 2, id);
    await shot(page, '04-acknowledged');
    alarmId = id;
  });

  it('dispatches a crew, records the arrival and resolves the alarm with a note', async () => {
    if (setupError) throw setupError;
    assert.ok(alarmId, 'needs the alarm of the test before');
    await page.goto(`${env.url}/alerts`);
    const card = (aid) => page.locator(`.alert-card[data-alert-id="${aid}"]`);
    await card(alarmId).locator('button[data-action="dispatch"]').click();
    const crew = card(alarmId).locator('[name="crew"]');
    if ((await crew.evaluate((e) => e.tagName)) === 'INPUT') await crew.fill('Test crew');
    await card(alarmId).locator('button[data-submit="dispatch"]').click();
    await card(alarmId).locator('button[data-action="arrive"]').waitFor();
    await card(alarmId).locator('button[data-action="arrive"]').click();
    await card(alarmId).locator('button[data-action="resolve"]').waitFor();
    await card(alarmId).locator('button[data-action="resolve"]').click();
    // The note is required: an empty form does not submit.
    await card(alarmId).locator('button[data-submit="resolve"]').click();
    assert.equal(await card(alarmId).locator('textarea[name="note"]').evaluate((e) => e.validity.valueMissing), true);
    await card(alarmId).locator('textarea[name="note"]').fill('dashboard browser test: probe cleaned');
    await card(alarmId).locator('button[data-submit="resolve"]').click();
    await page.waitForSelector(`.alert-card[data-alert-id="${alarmId}"]`, { state: 'detached' });
    const stored = await api(`/alerts/${alarmId}`);
    assert.equal(stored.state, 'resolved');
    assert.equal(stored.resolution_note, 'dashboard browser test: probe cleaned');
    assert.ok(stored.work_order?.dispatched_at && stored.work_order?.arrived_at, JSON.stringify(stored.work_order));
    const actions = stored.history.map((h) => h.action);
    const at = ['acknowledged', 'dispatched', 'arrived', 'resolved'].map((a) => actions.indexOf(a));
    assert.ok(at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1])), `history in the wrong order: ${actions.join(', ')}`);
    await page.click('button[data-tab="resolved"]');
    await card(alarmId).waitFor();
    await shot(page, '05-resolved');
  });

  it("opens a terminal's charts and asks for rollups on long ranges", async () => {
    if (setupError) throw setupError;
    const id = driven || terminals[0].id;
    await page.goto(`${env.url}/`);
    await page.click(`.tiles a[data-terminal="${id}"]`);
    await page.waitForSelector('.charts[aria-busy="false"] canvas');
    assert.equal(await page.locator('.charts .chart-fig').count(), 3);
    assert.ok(Number(await page.getAttribute('.charts', 'data-points')) > 0, 'the last 24 hours have readings');
    assert.equal(await page.locator('.qr-label svg.qr').count(), 1);
    assert.equal(new URL(page.url()).pathname, `/terminals/${id}`);
    await shot(page, '06-terminal');
    for (const [range, step] of [['7d', 'step=1h'], ['1y', 'step=1d'], ['1h', null]]) {
      const [res] = await Promise.all([
        page.waitForResponse((r) => r.url().includes(`/terminals/${encodeURIComponent(id)}/readings`)),
        page.click(`button[data-range="${range}"]`),
      ]);
      assert.equal(res.status(), 200);
      if (step) assert.ok(res.url().includes(step), `${range} asked ${res.url()}`);
      else assert.ok(!res.url().includes('step='), `${range} asked ${res.url()}`);
      await page.waitForSelector('.charts[aria-busy="false"] canvas');
    }
    // The label prints alone.
    await page.evaluate(() => document.body.classList.add('printing-label'));
    await page.emulateMedia({ media: 'print' });
    assert.equal(await page.isVisible('.qr-label svg.qr'), true);
    assert.equal(await page.isVisible('.charts'), false);
    await shot(page, '07-print-label');
    await page.emulateMedia({ media: 'screen' });
    await page.evaluate(() => document.body.classList.remove('printing-label'));
  });

  it('downloads a CSV whose rows are the stored readings, with UTC and local times', async () => {
    if (setupError) throw setupError;
    const id = driven || terminals[0].id;
    const today = await page.evaluate((tz) => new Intl.DateTimeFormat('en-CA', { timeZone: tz }).format(new Date()), site.timezone);
    await page.goto(`${env.url}/history?terminals=${encodeURIComponent(id)}&from=${today}&to=${today}&step=raw`);
    await page.click('button[data-action="preview"]');
    const row = page.locator(`.preview tr[data-terminal="${id}"]`);
    await row.waitFor();
    const previewCount = Number(await row.getAttribute('data-readings'));
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('button[data-action="download"]')]);
    assert.match(download.suggestedFilename(), new RegExp(`^weir_${id}_${today}_${today}_raw_.*\\.csv$`));
    const text = await readFile(await download.path(), 'utf8');
    await download.saveAs(new URL(`../test-artifacts/${download.suggestedFilename()}`, import.meta.url).pathname);
    const lines = text.trimEnd().split('\n');
    const header = lines[0].split(',');
    assert.deepEqual(header.slice(0, 3), ['terminal', 'ts_utc', 'ts_local']);
    for (const col of ['flow_m3h', 'turbidity_ntu', 'sludge_pct']) assert.ok(header.includes(col), `no ${col} column`);
    const rows = lines.slice(1);
    // The same period straight from the API, as JSON.
    const from = await page.evaluate(() => new URL(document.querySelector('.api-links a').href).searchParams.get('from'));
    const to = await page.evaluate(() => new URL(document.querySelector('.api-links a').href).searchParams.get('to'));
    const stored = await api(`/terminals/${encodeURIComponent(id)}/readings?from=${from}&to=${to}`);
    assert.equal(rows.length, stored.readings.length);
    assert.equal(previewCount, stored.readings.length);
    assert.ok(rows.length > 0, 'today has readings');
    for (const [i, line] of rows.entries()) {
      const [term, utc, local] = line.split(',');
      assert.equal(term, id);
      assert.equal(utc, stored.readings[i].ts);
      assert.equal(Date.parse(local), Date.parse(utc), `${local} is not ${utc}`);
      assert.match(local, /[+-]\d\d:\d\d$/);
    }
    if (published) {
      const flows = rows.map((l) => l.split(',')[header.indexOf('flow_m3h')]);
      assert.ok(flows.includes(String(published.flow)), 'the CSV holds the reading the test published');
    }
    await shot(page, '08-history');
  });

  it('fits a phone screen and starts keyboard navigation with a skip link', async () => {
    if (setupError) throw setupError;
    const phone = await newPage(browser, { width: 390, height: 844 });
    try {
      await login(phone.page, env);
      await phone.page.waitForSelector('.tiles a[data-terminal]');
      const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the overview is ${overflow} px wider than the phone`);
      await phone.page.keyboard.press('Tab');
      assert.equal(await phone.page.evaluate(() => document.activeElement.className), 'skip');
      const unlabelled = await phone.page.$$eval('input, select, textarea, button', (els) =>
        els.filter((e) => !(e.labels?.length || e.getAttribute('aria-label') || e.textContent.trim())).map((e) => e.outerHTML.slice(0, 80)),
      );
      assert.deepEqual(unlabelled, []);
      await shot(phone.page, '09-phone-overview');
      await phone.page.goto(`${env.url}/terminals/${encodeURIComponent(terminals[0].id)}`);
      await phone.page.waitForSelector('.charts[aria-busy="false"] canvas');
      const overflow2 = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow2 <= 0, `the terminal page is ${overflow2} px wider than the phone`);
      await shot(phone.page, '10-phone-terminal');
    } finally {
      await phone.context.close();
    }
  });

  it('gives inspectors no alert actions', async (t) => {
    if (setupError) throw setupError;
    if (!env.inspector) {
      t.skip('set WEIR_INSPECTOR_USER and WEIR_INSPECTOR_PASSWORD to check the inspector view');
      return;
    }
    const insp = await newPage(browser);
    try {
      await login(insp.page, env, env.inspector);
      assert.equal(await insp.page.getAttribute('header.top [data-role]', 'data-role'), 'inspector');
      await insp.page.click('[data-nav="alerts"]');
      await insp.page.waitForSelector('.alert-list');
      assert.equal(await insp.page.locator('.alert-list button[data-action]').count(), 0);
      const active = await insp.page.request.get(`${env.url}/api/v1/alerts?state=active`);
      if (active.ok() && (await active.json()).length) await insp.page.waitForSelector('.alert-card');
      await shot(insp.page, '11-inspector-alerts');
    } finally {
      await insp.context.close();
    }
  });

  it('raised no script errors', () => {
    if (setupError) throw setupError;
    assert.deepEqual(errors, []);
  });
});
