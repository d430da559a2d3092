// Pictures of the terminal in a real browser against a running gateway: the snapshot of a
// camera the gateway fetches (WEIR_CAMERA_TERMINAL names the terminal whose camera the test
// runner serves) appears on the terminal's page, a photo uploaded from a phone-sized screen
// appears above it, and an alert's card shows the pictures taken around it.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { gatewayEnv } from './support/env.mjs';
import { launch, login, newPage, shot } from './support/browser.mjs';

function cameraTerminal() {
  const id = process.env.WEIR_CAMERA_TERMINAL;
  if (!id) {
    throw new Error(
      'this test needs a terminal whose camera the gateway fetches: set WEIR_CAMERA_TERMINAL=ID after ' +
        '`weir terminal camera set ID --url http://.../snapshot.jpg` (gateway/tests/dashboard.rs serves one).',
    );
  }
  return id;
}

/** Terminals with a camera, some of which get alerts during the run (gateway/tests/dashboard.rs:
 * every terminal of the demo, whose scripted faults raise alerts). */
function alertCameraTerminals() {
  const ids = (process.env.WEIR_ALERT_CAMERA_TERMINALS || '').split(',').filter(Boolean);
  if (!ids.length) {
    throw new Error(
      'this test needs terminals with a camera that get alerts: set WEIR_ALERT_CAMERA_TERMINALS=ID,ID,... ' +
        '(gateway/tests/dashboard.rs gives every demo terminal a camera in its configuration file).',
    );
  }
  return new Set(ids);
}

async function until(what, ms, f) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

describe('pictures of the terminal', { timeout: 240000 }, () => {
  let env;
  let terminal;
  let browser;
  let page;
  let errors;

  before(async () => {
    env = gatewayEnv();
    terminal = cameraTerminal();
    browser = await launch();
    // A phone: field staff upload from the cabinet.
    ({ page, errors } = await newPage(browser, { width: 390, height: 844 }));
    await login(page, env);
  });

  after(async () => {
    await browser?.close();
  });

  it("shows the camera's snapshot on the terminal page, thumbnail loaded", async () => {
    await page.goto(`${env.url}/terminals/${encodeURIComponent(terminal)}`);
    // The gateway fetches the camera at start; the page asks again until it has it.
    const deadline = Date.now() + 60000;
    let found = false;
    while (!found && Date.now() < deadline) {
      await page.waitForSelector('.pictures[aria-busy="false"]');
      found = (await page.$('.pictures figure.picture[data-source="camera"] img')) !== null;
      if (!found) {
        await page.waitForTimeout(1000);
        await page.reload();
      }
    }
    assert.ok(found, `no camera picture of ${terminal} on its page within 60 s`);
    const img = await page.waitForSelector('.pictures figure.picture[data-source="camera"] img');
    await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, img);
    const size = await img.evaluate((el) => ({ w: el.naturalWidth, h: el.naturalHeight }));
    assert.equal(size.w, 320, 'the thumbnail is 320 px wide');
    const href = await page.$eval('.pictures figure.picture[data-source="camera"] a', (a) => a.getAttribute('href'));
    assert.match(href, /^\/api\/v1\/pictures\/\d+$/);
    await shot(page, 'terminal-pictures-camera');
    assert.deepEqual(errors, []);
  });

  it('takes a photo uploaded from the phone and shows it first', async () => {
    const label = await page.waitForSelector('[data-action="upload-picture"]');
    assert.ok(await label.isVisible(), 'the upload button shows for an admin');
    // The camera's own snapshot stands in for the phone's photo.
    const href = await page.$eval('.pictures figure.picture[data-source="camera"] a', (a) => a.getAttribute('href'));
    const photo = await (await page.request.get(`${env.url}${href}`)).body();
    const before = Number(await page.$eval('.pictures', (el) => el.dataset.count));
    await page.setInputFiles('#picture-file', { name: 'IMG_0001.jpg', mimeType: 'image/jpeg', buffer: photo });
    await page.waitForSelector('.pictures figure.picture-large[data-source="upload"]');
    const status = await page.textContent('.card[aria-labelledby="pictures-title"] p[role="status"]');
    assert.ok(status.length > 0 && !status.includes('error'), status);
    const after = Number(await page.$eval('.pictures', (el) => el.dataset.count));
    assert.equal(after, Math.min(before + 1, 9));

    // Text is refused with the gateway's reason, and the list does not change.
    await page.setInputFiles('#picture-file', { name: 'notes.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('not a picture at all') });
    await page.waitForSelector('.card[aria-labelledby="pictures-title"] p.error[role="status"]');
    const refused = await page.textContent('.card[aria-labelledby="pictures-title"] p[role="status"]');
    assert.match(refused, /JPEG or PNG/);
    assert.equal(Number(await page.$eval('.pictures', (el) => el.dataset.count)), after);
    await shot(page, 'terminal-pictures-upload');
    assert.deepEqual(errors, []);
  });

  it("shows the camera's pictures around an alert on the alert's card", async () => {
    const ids = alertCameraTerminals();
    const json = async (path) => {
      const res = await page.request.get(`${env.url}/api/v1${path}`);
      assert.ok(res.ok(), `GET ${path}: HTTP ${res.status()}`);
      return res.json();
    };
    // The first active alert of a terminal with a camera that has a picture around it.
    const full = await until('an active alert of a terminal with a camera, with a picture around it', 90000, async () => {
      for (const a of await json('/alerts?state=active')) {
        if (!ids.has(a.terminal)) continue;
        const one = await json(`/alerts/${a.id}`);
        if (one.pictures.before || one.pictures.after) return one;
      }
      return null;
    });
    const alert = full;
    const id = alert.terminal;
    const shown = full.pictures.before || full.pictures.after;
    assert.equal(shown.source, 'camera');
    await page.goto(`${env.url}/terminals/${encodeURIComponent(id)}`);
    const card = `article.alert-card[data-alert-id="${alert.id}"]`;
    await page.click(`${card} details.history summary`);
    const img = await page.waitForSelector(`${card} .alert-pictures figure.picture[data-picture-id="${shown.id}"] img`);
    await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, img);
    assert.equal(await img.evaluate((el) => el.naturalWidth), 320);
    await shot(page, 'alert-pictures');
    assert.deepEqual(errors, []);
  });
});
