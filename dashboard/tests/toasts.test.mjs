// Toasts in a real browser, with the dashboard's own stylesheet and element builder: a burst
// of new alerts (a replay, or one incident across many terminals) must not pile up over the
// controls an operator needs next.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launch, newPage } from './support/browser.mjs';

const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');

describe('toasts', { timeout: 60000 }, () => {
  let browser;
  let page;
  let errors;

  before(async () => {
    browser = await launch();
    ({ page, errors } = await newPage(browser, { width: 360, height: 640 }));
    const css = await readFile(path.join(src, 'styles.css'), 'utf8');
    const dom = await readFile(path.join(src, 'dom.js'), 'utf8');
    // A control right where toasts stack on a phone: bottom right.
    await page.setContent(
      `<!doctype html><html><head><style>${css}</style></head><body>
       <button id="under" style="position:fixed;right:1rem;bottom:1rem">Acknowledge</button>
       <div id="announcer" class="visually-hidden" aria-live="assertive"></div>
       <div id="toasts" aria-hidden="true"></div></body></html>`,
    );
    await page.addScriptTag({ type: 'module', content: `${dom}\nwindow.announce = announce; window.MAX_TOASTS = MAX_TOASTS;` });
    await page.waitForFunction(() => typeof window.announce === 'function');
  });

  after(async () => {
    await browser?.close();
  });

  it('fold a burst into the newest few and one count of the rest', async () => {
    const state = await page.evaluate(() => {
      for (let i = 1; i <= 20; i++) window.announce(`alert ${i}`, 'alarm', (n) => `${n} more`);
      const box = document.getElementById('toasts');
      return {
        max: window.MAX_TOASTS,
        texts: [...box.querySelectorAll('.toast')].map((t) => t.textContent),
        said: document.getElementById('announcer').textContent,
        height: box.getBoundingClientRect().height,
      };
    });
    // The summary first, then the newest; 20 = the shown + the folded.
    assert.deepEqual(state.texts, [`${20 - (state.max - 1)} more`, ...Array.from({ length: state.max - 1 }, (_, i) => `alert ${20 - state.max + 2 + i}`)]);
    assert.equal(state.said, 'alert 20');
    assert.ok(state.height < 640 / 2, `the toast stack is ${state.height}px high on a 640px screen`);
  });

  it('let clicks through to the control under them', async () => {
    await page.evaluate(() => window.announce('one more', 'warning', (n) => `${n} more`));
    let clicked = false;
    await page.exposeFunction('clicked', () => {
      clicked = true;
    });
    await page.evaluate(() => document.getElementById('under').addEventListener('click', () => window.clicked()));
    await page.click('#under', { timeout: 5000 });
    await page.waitForFunction(() => true);
    assert.ok(clicked, 'the click did not reach the button under the toasts');
    assert.deepEqual(errors, []);
  });

  it('without a summary, keep only the newest few', async () => {
    const texts = await page.evaluate(() => {
      const box = document.getElementById('toasts');
      box.replaceChildren();
      for (let i = 1; i <= 6; i++) window.announce(`saved ${i}`);
      return [...box.querySelectorAll('.toast')].map((t) => t.textContent);
    });
    assert.equal(texts.length, await page.evaluate(() => window.MAX_TOASTS));
    assert.equal(texts.at(-1), 'saved 6');
  });
});
