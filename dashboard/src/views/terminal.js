// One terminal: its latest values and node status, pictures of the site, charts over a chosen
// range with alert periods and data gaps, its alerts, refused messages, and a printable QR label.

import { api } from '../api.js';
import { ctx } from '../context.js';
import { h, mount } from '../dom.js';
import { language, t } from '../i18n.js';
import { chooseStep, RANGES, rfc3339, toMs, parseLocalInput, toLocalInput, utcOffsetLabel } from '../format.js';
import { can, isActive, QUANTITIES, terminalState } from '../state.js';
import { alertPeriods, toColumns } from '../series.js';
import { activeAlerts, store, subscribe } from '../store.js';
import { metricList, stateBadge } from './overview.js';
import { alertCard } from './alerts.js';
import { drawChart } from './chart.js';
import { qrSvg } from './qr.js';
import { picturesCard } from './pictures.js';
import { labelTarget } from '../label.js';
import { rejectReason, resolutionText } from '../texts.js';

const COLORS = { flow_m3h: 'rgb(0, 105, 180)', turbidity_ntu: 'rgb(150, 90, 0)', sludge_pct: 'rgb(100, 60, 150)' };

function statusCard(term) {
  const st = term.status || {};
  const latest = term.latest || {};
  const f = ctx.fmt;
  const row = (label, value) => h('div', null, h('dt', null, label), h('dd', null, value ?? '—'));
  const uptime = st.uptime_s != null ? t('duration.hm', { h: Math.floor(st.uptime_s / 3600), m: Math.floor((st.uptime_s % 3600) / 60) }) : null;
  return h(
    'dl',
    { class: 'facts status' },
    row(t('node.lastSeen'), term.last_seen ? `${f.dateTime(term.last_seen)} (${f.age(Date.now() / 1000 - term.last_seen)})` : null),
    row(t('node.link'), st.online === false ? t('node.linkDown') : term.status ? t('node.linkUp') : null),
    row(t('node.firmware'), st.firmware),
    row(t('node.boot'), st.boot != null ? String(st.boot) : null),
    row(t('node.uptime'), uptime),
    row(t('node.buffered'), st.buffered != null ? t('node.readings', { n: st.buffered }) : null),
    row(t('node.dropped'), st.dropped != null ? t('node.readings', { n: st.dropped }) : null),
    row(t('node.supply'), latest.supply_v != null ? `${f.number(latest.supply_v, 1)} V` : latest.faults?.supply_v ? t(`fault.${latest.faults.supply_v}`) : null),
    row(t('node.signal'), latest.rssi_dbm != null ? `${f.number(latest.rssi_dbm, 0)} dBm` : latest.faults?.rssi_dbm ? t(`fault.${latest.faults.rssi_dbm}`) : null),
    row(t('node.statusAt'), st.updated_at ? f.dateTime(st.updated_at) : null),
    row(t('terminal.designFlow'), term.design_flow_m3d != null ? `${f.number(term.design_flow_m3d, 1)} m³/d` : null),
    row(t('terminal.tankDepth'), term.tank_depth_m != null ? `${f.number(term.tank_depth_m, 2)} m` : null),
    row(t('terminal.position'), Number.isFinite(term.lat) ? `${term.lat.toFixed(5)}, ${term.lon.toFixed(5)}` : null),
  );
}

/** The range the page shows: a preset from the URL (`?range=7d`), or `?from=&to=`. */
function rangeFromQuery(query) {
  const now = Date.now();
  const from = toMs(query.get('from'));
  const to = toMs(query.get('to'));
  if (from != null && to != null && from < to) return { key: 'custom', fromMs: from, toMs: to };
  const preset = RANGES.find((r) => r.key === query.get('range')) || RANGES[2];
  return { key: preset.key, fromMs: now - preset.seconds * 1000, toMs: now };
}

export function terminalView(main, { params, query }) {
  const id = params[0];
  let term = store.terminals.get(id);
  if (!term) {
    mount(main, h('h1', null, id), h('p', { class: 'error', role: 'alert' }, t('terminal.unknown', { id })), h('a', { href: '/' }, t('nav.overview')));
    return null;
  }
  let range = rangeFromQuery(query);
  let charts = [];
  let alertHistory = [];
  let loadSeq = 0;
  const tz = store.site.timezone;
  // The label's QR code: the address field staff reach (nodes.dashboard_url), else this one.
  const target = labelTarget({ dashboardUrl: store.site.dashboard_url, origin: location.origin, id });

  const head = h('div', { class: 'terminal-head' });
  const now = h('div');
  const status = h('div');
  const chartsBox = h('div', { class: 'charts', 'aria-busy': 'true' });
  const chartNote = h('p', { class: 'muted small', role: 'status' });
  const alertsBox = h('div');
  const lettersBox = h('div');
  const pictures = picturesCard(id);

  function drawHead() {
    const state = terminalState(term, activeAlerts().filter((a) => a.terminal === id), Date.now());
    mount(
      head,
      h('h1', null, h('span', { class: 'tid' }, id), ' ', h('span', { translate: 'no' }, term.name), ' ', stateBadge(state)),
      term.village ? h('p', { class: 'muted', translate: 'no' }, term.village) : null,
    );
    mount(
      now,
      metricList(term),
      h('p', { class: 'muted small' }, term.latest ? t('terminal.readingAt', { at: ctx.fmt.dateTimeSec(term.latest.ts), age: ctx.fmt.age((Date.now() - toMs(term.latest.ts)) / 1000) }) : t('overview.noReading')),
    );
    mount(status, statusCard(term));
  }

  const fromInput = h('input', { id: 'r-from', type: 'datetime-local', value: toLocalInput(range.fromMs, tz) });
  const toInput = h('input', { id: 'r-to', type: 'datetime-local', value: toLocalInput(range.toMs, tz) });
  const presets = h(
    'div',
    { class: 'tabs', role: 'group', 'aria-label': t('chart.range') },
    RANGES.map((r) =>
      h('button', { type: 'button', 'data-range': r.key, 'aria-pressed': String(range.key === r.key), onClick: () => setRange({ key: r.key, fromMs: Date.now() - r.seconds * 1000, toMs: Date.now() }) }, t(`range.${r.key}`)),
    ),
  );
  const custom = h(
    'form',
    {
      class: 'filters',
      onSubmit: (e) => {
        e.preventDefault();
        const from = parseLocalInput(fromInput.value, tz);
        const to = parseLocalInput(toInput.value, tz);
        if (from == null || to == null || from >= to) {
          chartNote.textContent = t('chart.badRange');
          return;
        }
        setRange({ key: 'custom', fromMs: from, toMs: to });
      },
    },
    h('label', { for: 'r-from' }, t('chart.from')),
    fromInput,
    h('label', { for: 'r-to' }, t('chart.to')),
    toInput,
    h('span', { class: 'muted small' }, `${tz} (${utcOffsetLabel(tz)})`),
    h('button', { type: 'submit' }, t('chart.show')),
  );

  function setRange(r) {
    range = r;
    presets.querySelectorAll('button').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.range === r.key)));
    fromInput.value = toLocalInput(r.fromMs, tz);
    toInput.value = toLocalInput(r.toMs, tz);
    const q = r.key === 'custom' ? `?from=${rfc3339(r.fromMs)}&to=${rfc3339(r.toMs)}` : r.key === '24h' ? '' : `?range=${r.key}`;
    window.history.replaceState(null, '', `/terminals/${encodeURIComponent(id)}${q}`);
    loadCharts();
  }

  async function loadCharts() {
    const seq = ++loadSeq;
    const fromS = Math.floor(range.fromMs / 1000);
    const toS = Math.floor(range.toMs / 1000);
    const step = chooseStep(toS - fromS);
    chartsBox.setAttribute('aria-busy', 'true');
    chartNote.textContent = t('common.loading');
    try {
      const body = await api.readings(id, { from: rfc3339(range.fromMs), to: rfc3339(range.toMs), step });
      if (seq !== loadSeq) return;
      const columns = toColumns(body, QUANTITIES.map((q) => q.field), fromS, toS);
      const periods = alertPeriods(alertHistory.length ? alertHistory : activeAlerts(), id, fromS, toS, Math.floor(Date.now() / 1000));
      charts.forEach((c) => c.destroy());
      charts = [];
      chartsBox.replaceChildren();
      for (const q of QUANTITIES) {
        const host = h('div', { class: 'chart', 'data-field': q.field });
        chartsBox.append(h('figure', { class: 'chart-fig' }, h('figcaption', null, t(`q.${q.field}`), ` (${q.unit})`), host));
        charts.push(drawChart(host, { ...q, color: COLORS[q.field], columns, periods, fromS, toS, height: window.innerWidth < 600 ? 170 : 220 }));
      }
      const n = body.readings.length;
      chartNote.textContent = [
        step ? t('chart.stepped', { step: t(`step.${step}`), n }) : t('chart.raw', { n }),
        columns.gaps.length ? t('chart.gaps', { n: columns.gaps.length }) : t('chart.noGaps'),
        periods.length ? t('chart.alertPeriods', { n: periods.length }) : '',
      ].filter(Boolean).join(' · ');
      chartsBox.dataset.points = String(n);
    } catch (e) {
      if (seq !== loadSeq) return;
      chartNote.textContent = t('error.generic', { detail: e.message });
    } finally {
      if (seq === loadSeq) chartsBox.setAttribute('aria-busy', 'false');
    }
  }

  async function loadAlerts() {
    if (!store.alertsAvailable) {
      mount(alertsBox, h('p', { class: 'notice' }, t('alerts.unavailable')));
      return;
    }
    try {
      alertHistory = await api.alerts({ state: 'all', terminal: id, limit: 200 });
    } catch (e) {
      mount(alertsBox, h('p', { class: 'error' }, t('error.generic', { detail: e.message })));
      return;
    }
    const open = alertHistory.filter(isActive);
    const past = alertHistory.filter((a) => !isActive(a));
    const f = ctx.fmt;
    const words = { lang: language(), fmt: f };
    mount(
      alertsBox,
      h('h3', null, t('terminal.openAlerts', { n: open.length })),
      open.length ? open.map((a) => alertCard(a, { compact: true })) : h('p', { class: 'muted' }, t('alerts.noneActive')),
      h('h3', null, t('terminal.pastAlerts', { n: past.length })),
      past.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              null,
              h('thead', null, h('tr', null, ['alerts.severity', 'alerts.rule', 'alerts.opened', 'alerts.resolved', 'alerts.resolvedBy', 'alerts.note'].map((k) => h('th', { scope: 'col' }, t(k))))),
              h(
                'tbody',
                null,
                past.map((a) =>
                  h('tr', null, h('td', null, t(`severity.${a.severity}`)), h('td', null, t(`rule.${a.rule}`)), h('td', null, f.dateTime(a.opened_at)), h('td', null, f.dateTime(a.resolved_at)), h('td', { translate: 'no' }, a.resolved_by || '—'), h('td', { translate: a.resolved_by === 'weir' ? null : 'no' }, resolutionText(a, words))),
                ),
              ),
            ),
          )
        : h('p', { class: 'muted' }, t('terminal.noPastAlerts')),
    );
  }

  async function loadLetters() {
    if (!can(store.me?.role, 'deadLetters')) return;
    try {
      const letters = (await api.deadLetters(500)).filter((d) => d.terminal === id).slice(0, 20);
      mount(
        lettersBox,
        h('h2', null, t('terminal.deadLetters')),
        h('p', { class: 'muted small' }, t('terminal.deadLettersHint')),
        letters.length
          ? h(
              'ul',
              { class: 'letters' },
              letters.map((d) =>
                h(
                  'li',
                  { 'data-reason': d.reason },
                  h('time', null, ctx.fmt.dateTimeSec(d.received_at)),
                  ' ',
                  h('strong', { title: d.reason }, rejectReason(d.reason, { lang: language() })),
                  // The contract's own sentence, in English: it names the field and the limit.
                  d.detail ? [' ', h('span', { lang: 'en', class: 'letter-detail' }, d.detail)] : '',
                  h('details', null, h('summary', null, t('terminal.payload')), h('pre', null, String(d.payload ?? '').slice(0, 2000))),
                ),
              ),
            )
          : h('p', { class: 'muted' }, t('terminal.noDeadLetters')),
      );
    } catch {
      lettersBox.replaceChildren();
    }
  }

  const label = h(
    'section',
    { class: 'qr-label', 'aria-labelledby': 'qr-title' },
    h('h2', { id: 'qr-title', class: 'no-print' }, t('terminal.qr')),
    target.loopback ? h('p', { class: 'notice qr-warning no-print', role: 'note' }, t('terminal.qrLoopback', { host: target.host })) : null,
    h('div', { class: 'label-body' },
      qrSvg(target.url, { title: t('terminal.qrAlt', { id }) }),
      h(
        'div',
        { class: 'label-text' },
        h('strong', { class: 'label-id' }, id),
        h('span', { translate: 'no' }, term.name),
        h('span', { translate: 'no' }, term.village || ''),
        h('span', { class: 'label-url' }, target.url),
      ),
    ),
    h('button', {
      type: 'button',
      class: 'no-print',
      'data-action': 'print-label',
      onClick: () => {
        document.body.classList.add('printing-label');
        window.addEventListener('afterprint', () => document.body.classList.remove('printing-label'), { once: true });
        window.print();
      },
    }, t('terminal.printLabel')),
  );

  mount(
    main,
    h('p', { class: 'crumbs no-print' }, h('a', { href: '/' }, t('nav.overview')), ' › ', id),
    head,
    h(
      'div',
      { class: 'terminal-top' },
      h('section', { class: 'card', 'aria-labelledby': 'now-title' }, h('h2', { id: 'now-title' }, t('terminal.now')), now),
      h('section', { class: 'card', 'aria-labelledby': 'node-title' }, h('h2', { id: 'node-title' }, t('terminal.node')), status),
      h('div', { class: 'card' }, label),
    ),
    pictures.card,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'chart-title' },
      h('h2', { id: 'chart-title' }, t('terminal.history')),
      presets,
      custom,
      chartNote,
      chartsBox,
      h('p', { class: 'legend small' },
        h('span', { class: 'key key-gap' }), t('chart.legendGap'), ' ',
        h('span', { class: 'key key-alarm' }), t('severity.alarm'), ' ',
        h('span', { class: 'key key-warning' }), t('severity.warning'), ' ',
        h('span', { class: 'key key-maintenance' }), t('severity.maintenance'), ' ',
        h('a', { href: `/history?terminals=${encodeURIComponent(id)}` }, t('terminal.export')),
      ),
    ),
    h('section', { class: 'card', 'aria-labelledby': 'alerts-title' }, h('h2', { id: 'alerts-title' }, t('page.alerts')), alertsBox),
    lettersBox,
  );
  drawHead();
  loadAlerts().then(loadCharts);
  loadLetters();

  const offs = [
    subscribe('terminal', (tid) => {
      if (tid !== id) return;
      term = store.terminals.get(id);
      drawHead();
    }),
    subscribe('terminals', () => {
      term = store.terminals.get(id) || term;
      drawHead();
    }),
    subscribe('alert', ({ alert }) => {
      if (alert.terminal !== id) return;
      drawHead();
      loadAlerts();
    }),
  ];
  const tick = setInterval(drawHead, 30000);
  return () => {
    offs.forEach((off) => off());
    clearInterval(tick);
    charts.forEach((c) => c.destroy());
  };
}
