// Headless Chromium from Debian, driven by playwright-core (no browser download).

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.resolve(here, '../../test-artifacts');

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launch() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  await mkdir(ARTIFACTS, { recursive: true });
  try {
    return await chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 30000 });
  } catch (e) {
    throw new Error(`could not start Chromium at ${executablePath} (install it with \`apt-get install -y chromium\`): ${e.message}`);
  }
}

/** A fresh browser context: Chinese UI, and a machine zone far from the site's so any time
 * shown in the browser's zone instead of the site's would be caught. */
export async function newPage(browser, { locale = 'zh-CN', width = 1440, height = 900 } = {}) {
  const context = await browser.newContext({ locale, timezoneId: 'America/New_York', viewport: { width, height }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { context, page, errors };
}

export async function login(page, env, { user = env.user, password = env.password } = {}) {
  await page.goto(`${env.url}/`);
  await page.waitForSelector('form.login');
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.click('form.login button[type=submit]');
  await page.waitForSelector('header.top, #login-error:not([hidden])');
  if (await page.isVisible('#login-error')) {
    throw new Error(`could not log in as ${user} at ${env.url}: ${await page.textContent('#login-error')}`);
  }
}

export function shot(page, name) {
  return page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}
