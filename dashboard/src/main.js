// Entry point: language, session, shell and routes.

import './styles.css';
import { api, setUnauthorizedHandler } from './api.js';
import { announce, h, mount } from './dom.js';
import { LANGUAGES, language, pickLanguage, setLanguage, t } from './i18n.js';
import { makeFormat } from './format.js';
import { isActive } from './state.js';
import { ctx } from './context.js';
import { activeAlerts, loadAll, startLive, stopLive, store, subscribe } from './store.js';
import { loginView } from './views/login.js';
import { overviewView } from './views/overview.js';
import { alertsView } from './views/alerts.js';
import { terminalView } from './views/terminal.js';
import { historyView } from './views/history.js';
import { reportsView } from './views/reports.js';

performance.mark('weir:start');

const LANG_KEY = 'weir.lang';
const WALL_KEY = 'weir.wall';


const routes = [
  { re: /^\/$/, page: 'overview', view: overviewView },
  { re: /^\/alerts$/, page: 'alerts', view: alertsView },
  { re: /^\/terminals\/([^/]+)$/, page: 'terminal', view: terminalView },
  { re: /^\/history$/, page: 'history', view: historyView },
  { re: /^\/reports$/, page: 'reports', view: reportsView },
];

let cleanup = null;
let afterLogin = '/';

function applyLanguage(lang) {
  setLanguage(lang);
  document.documentElement.lang = lang;
  ctx.fmt = makeFormat(lang, store.site.timezone);
}

function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
  window.scrollTo(0, 0);
}

function header(page) {
  const me = store.me;
  const count = activeAlerts().length;
  const nav = [
    ['/', 'overview', t('nav.overview')],
    ['/alerts', 'alerts', t('nav.alerts')],
    ['/history', 'history', t('nav.history')],
    ['/reports', 'reports', t('nav.reports')],
  ];
  const other = LANGUAGES.find((l) => l !== language());
  return h(
    'header',
    { class: 'top' },
    h('a', { class: 'skip', href: '#main' }, t('nav.skip')),
    h('a', { class: 'brand', href: '/', translate: 'no' }, store.site.name || 'Weir'),
    h(
      'nav',
      { 'aria-label': t('nav.label') },
      h(
        'ul',
        null,
        nav.map(([href, key, label]) =>
          h(
            'li',
            null,
            h(
              'a',
              { href, 'aria-current': page === key ? 'page' : null, 'data-nav': key },
              label,
              key === 'alerts' ? alertBadge(count) : null,
            ),
          ),
        ),
      ),
    ),
    h(
      'div',
      { class: 'top-tools' },
      h(
        'span',
        { class: ['live', `live-${store.live}`], role: 'status', 'data-live': store.live, title: t(`live.${store.live}.hint`) },
        h('span', { class: 'dot', 'aria-hidden': 'true' }),
        t(`live.${store.live}`),
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'ghost',
          lang: other,
          'data-action': 'language',
          'aria-label': t('lang.switch'),
          onClick: () => {
            localStorage.setItem(LANG_KEY, other);
            applyLanguage(other);
            render();
          },
        },
        t(`lang.name.${other}`),
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'ghost',
          'aria-pressed': String(document.body.classList.contains('wall')),
          onClick: (e) => {
            const on = document.body.classList.toggle('wall');
            localStorage.setItem(WALL_KEY, on ? '1' : '');
            e.currentTarget.setAttribute('aria-pressed', String(on));
          },
        },
        t('nav.wall'),
      ),
      me
        ? h(
            'span',
            { class: 'who', 'data-role': me.role },
            h('span', { translate: 'no' }, me.name),
            h('span', { class: 'role' }, t(`role.${me.role}`)),
          )
        : null,
      me
        ? h(
            'button',
            {
              type: 'button',
              class: 'ghost',
              onClick: async () => {
                try {
                  await api.logout();
                } finally {
                  signedOut();
                }
              },
            },
            t('nav.logout'),
          )
        : null,
    ),
  );
}

function signedOut() {
  stopLive();
  store.me = null;
  if (location.pathname !== '/login') afterLogin = location.pathname + location.search;
  history.replaceState(null, '', '/login');
  render();
}

function render() {
  if (cleanup) cleanup();
  cleanup = null;
  const app = document.getElementById('app');
  const path = location.pathname;
  if (!store.me || path === '/login') {
    document.title = `${t('login.title')} · ${store.site.name || 'Weir'}`;
    const main = h('main', { id: 'main', class: 'login-page', tabindex: '-1' });
    mount(app, main);
    cleanup = loginView(main, {
      onLanguage: (lang) => {
        localStorage.setItem(LANG_KEY, lang);
        applyLanguage(lang);
        render();
      },
      onLogin: async (me) => {
        store.me = me;
        await start();
        navigate(afterLogin === '/login' ? '/' : afterLogin, { replace: true });
      },
    });
    return;
  }
  let match = null;
  let route = routes.find((r) => (match = r.re.exec(path)));
  if (!route) {
    route = { page: 'notfound' };
  }
  const main = h('main', { id: 'main', tabindex: '-1' });
  mount(app, header(route.page), main, h('footer', { class: 'foot' }, t('footer.times', { tz: store.site.timezone })));
  document.title = `${t(`page.${route.page}`)} · ${store.site.name || 'Weir'}`;
  if (route.view) {
    cleanup = route.view(main, { params: match.slice(1).map(decodeURIComponent), query: new URLSearchParams(location.search) });
  } else {
    mount(main, h('h1', null, t('page.notfound')), h('p', null, h('a', { href: '/' }, t('nav.overview'))));
  }
}

/** Updates the header's live state and alert count in place (focus stays where it is). */
function refreshHeader() {
  const top = document.querySelector('header.top');
  if (!top) return;
  const live = top.querySelector('.live');
  live.className = `live live-${store.live}`;
  live.dataset.live = store.live;
  live.title = t(`live.${store.live}.hint`);
  live.lastChild.textContent = t(`live.${store.live}`);
  // The badge is always there and only its text changes: on a wall display a stream of
  // alert changes must not make the header jump.
  const badge = top.querySelector('[data-nav="alerts"] .badge');
  const count = activeAlerts().length;
  if (badge && badge.textContent !== String(count)) {
    badge.replaceWith(alertBadge(count));
  }
}

function alertBadge(count) {
  return h(
    'span',
    { class: ['badge', count === 0 ? 'badge-none' : null], 'aria-label': t('nav.activeAlerts', { n: count }), 'aria-hidden': count === 0 ? 'true' : null },
    String(count),
  );
}

/** Asks for the site and the data together. Without the site the defaults stay: the page
 * still works, in the default zone. */
function fetchData() {
  return Promise.all([api.site().catch(() => null), loadAll()]);
}

/** Starts the signed-in app with the data `fetching` (fetchData()) brings. */
async function start(fetching = fetchData()) {
  const [site] = await fetching;
  if (site) store.site = site;
  applyLanguage(language());
  startLive();
}

async function boot() {
  applyLanguage(pickLanguage(navigator.languages || [navigator.language], localStorage.getItem(LANG_KEY)));
  if (localStorage.getItem(WALL_KEY) === '1' || new URLSearchParams(location.search).has('wall')) {
    document.body.classList.add('wall');
  }
  setUnauthorizedHandler(() => {
    if (store.me) signedOut();
  });
  // Same-origin links move inside the app instead of reloading it.
  document.addEventListener('click', (e) => {
    const a = e.target.closest('a[href]');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (a.target || a.hasAttribute('download')) return;
    const href = a.getAttribute('href');
    if (!href.startsWith('/') || href.startsWith('/api/') || href.startsWith('//')) return;
    e.preventDefault();
    navigate(href);
    document.getElementById('main')?.focus({ preventScroll: true });
  });
  window.addEventListener('popstate', render);
  subscribe('live', refreshHeader);
  subscribe('alerts', refreshHeader);
  subscribe('alert', refreshHeader);
  subscribe('alert', ({ alert, previous }) => {
    if (previous || !isActive(alert)) return;
    const term = store.terminals.get(alert.terminal);
    announce(
      t('alerts.new', { severity: t(`severity.${alert.severity}`), terminal: alert.terminal, name: term?.name || '', rule: t(`rule.${alert.rule}`) }),
      alert.severity,
      (n) => t('alerts.newMore', { n }),
    );
  });
  // The session and the data are asked for at once: for a user who is signed in (the usual
  // case) the first render waits for one round of requests, not two. Signed out, the data
  // requests fail with 401 and are dropped.
  const fetching = fetchData();
  fetching.catch(() => {});
  try {
    store.me = await api.me();
  } catch {
    store.me = null;
  }
  if (store.me) {
    try {
      await start(fetching);
    } catch (e) {
      mount(document.getElementById('app'), h('p', { class: 'error', role: 'alert' }, t('error.load', { detail: e.message })));
      return;
    }
  } else if (location.pathname !== '/login') {
    afterLogin = location.pathname + location.search;
  }
  render();
}

ctx.navigate = navigate;
boot();
