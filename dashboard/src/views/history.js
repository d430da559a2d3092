// History and export: choose terminals and a period, preview what is there, download a CSV
// with UTC and site-local times and units in the column names.

import { api } from '../api.js';
import { ctx } from '../context.js';
import { h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { chooseStep, parseLocalInput, rfc3339, toLocalInput, utcOffsetLabel } from '../format.js';
import { addLocalTime, exportFileName } from '../csv.js';
import { store } from '../store.js';

const STEPS = ['raw', '1h', '1d'];
const DAY_MS = 86400000;

/** Today's local date in the site's zone, `YYYY-MM-DD`. */
function localDate(ms, tz) {
  return toLocalInput(ms, tz).slice(0, 10);
}

function addDays(date, n, tz) {
  return localDate(parseLocalInput(date, tz) + n * DAY_MS + DAY_MS / 2, tz);
}

export function historyView(main, { query }) {
  const tz = store.site.timezone;
  const terms = [...store.terminals.values()].sort((a, b) => a.id.localeCompare(b.id));
  const chosen = new Set((query.get('terminals') || '').split(',').filter((id) => store.terminals.has(id)));
  const today = localDate(Date.now(), tz);
  let from = /^\d{4}-\d{2}-\d{2}$/.test(query.get('from') || '') ? query.get('from') : addDays(today, -6, tz);
  let to = /^\d{4}-\d{2}-\d{2}$/.test(query.get('to') || '') ? query.get('to') : today;
  let step = STEPS.includes(query.get('step')) ? query.get('step') : null;

  const status = h('p', { class: 'small', role: 'status', id: 'export-status' });
  const preview = h('div', { class: 'preview', 'aria-live': 'polite' });
  const links = h('div', { class: 'api-links small' });

  /** The period as UTC instants: from the start of `from` to the end of `to`, site-local. */
  const period = () => {
    const a = parseLocalInput(from, tz);
    const b = parseLocalInput(addDays(to, 1, tz), tz);
    return a != null && b != null && a < b ? [a, b] : null;
  };
  const effectiveStep = () => {
    if (step) return step === 'raw' ? null : step;
    const p = period();
    return p ? chooseStep((p[1] - p[0]) / 1000) : null;
  };

  function sync() {
    const q = new URLSearchParams();
    if (chosen.size) q.set('terminals', [...chosen].join(','));
    q.set('from', from);
    q.set('to', to);
    if (step) q.set('step', step);
    window.history.replaceState(null, '', `/history?${q}`);
    drawLinks();
  }

  function drawLinks() {
    const p = period();
    const ids = [...chosen];
    if (!p || !ids.length) {
      links.replaceChildren();
      return;
    }
    const s = effectiveStep();
    mount(
      links,
      h('p', null, t('history.apiLinks')),
      h('ul', { class: 'inline-list' }, ids.map((id) => h('li', null, h('a', { href: api.csvUrl(id, { from: rfc3339(p[0]), to: rfc3339(p[1]), step: s }), download: `${id}.csv` }, id)))),
    );
  }

  const boxes = terms.map((term) =>
    h(
      'label',
      { class: 'check', 'data-terminal': term.id },
      h('input', {
        type: 'checkbox',
        name: 'terminal',
        value: term.id,
        checked: chosen.has(term.id),
        onChange: (e) => {
          if (e.target.checked) chosen.add(term.id);
          else chosen.delete(term.id);
          sync();
        },
      }),
      h('span', null, h('strong', null, term.id), ' ', h('span', { translate: 'no' }, term.name, term.village ? ` · ${term.village}` : '')),
    ),
  );
  const setAll = (on) => {
    for (const b of boxes) {
      if (b.hidden) continue;
      const input = b.querySelector('input');
      input.checked = on;
      if (on) chosen.add(input.value);
      else chosen.delete(input.value);
    }
    sync();
  };

  const stepRadios = h(
    'fieldset',
    { class: 'radios' },
    h('legend', null, t('history.resolution')),
    [['auto', t('history.auto')], ...STEPS.map((s) => [s, t(`step.${s}`)])].map(([value, label]) =>
      h('label', null, h('input', { type: 'radio', name: 'step', value, checked: (step || 'auto') === value, onChange: () => ((step = value === 'auto' ? null : value), sync()) }), label),
    ),
  );

  const presets = [
    ['7d', () => [addDays(today, -6, tz), today]],
    ['30d', () => [addDays(today, -29, tz), today]],
    ['lastMonth', () => {
      const first = `${today.slice(0, 8)}01`;
      const prevEnd = addDays(first, -1, tz);
      return [`${prevEnd.slice(0, 8)}01`, prevEnd];
    }],
    ['thisYear', () => [`${today.slice(0, 4)}-01-01`, today]],
  ];
  const fromInput = h('input', { id: 'h-from', type: 'date', value: from, required: true, onChange: (e) => ((from = e.target.value), sync()) });
  const toInput = h('input', { id: 'h-to', type: 'date', value: to, required: true, onChange: (e) => ((to = e.target.value), sync()) });

  async function runPreview() {
    const p = period();
    const ids = [...chosen];
    if (!ids.length) return (status.textContent = t('history.chooseTerminals'));
    if (!p) return (status.textContent = t('chart.badRange'));
    status.textContent = t('common.loading');
    const f = ctx.fmt;
    const rows = [];
    let total = 0;
    const days = Math.round((p[1] - p[0]) / DAY_MS);
    for (const id of ids) {
      const body = await api.readings(id, { from: rfc3339(p[0]), to: rfc3339(p[1]), step: '1d' });
      const r = body.readings;
      const n = r.reduce((s, x) => s + (x.n || 0), 0);
      total += n;
      const mean = (field) => {
        let sum = 0;
        let cnt = 0;
        for (const x of r) if (x[field]) (sum += x[field].mean * x.n), (cnt += x.n);
        return cnt ? sum / cnt : null;
      };
      const max = (field) => r.reduce((m, x) => (x[field] && (m == null || x[field].max > m) ? x[field].max : m), null);
      rows.push(
        h(
          'tr',
          { 'data-terminal': id, 'data-readings': String(n) },
          h('th', { scope: 'row' }, id),
          h('td', { class: 'num' }, f.number(n, 0)),
          h('td', { class: 'num' }, t('history.daysOf', { n: r.filter((x) => x.n > 0).length, of: days })),
          h('td', null, r.length ? f.day(r[0].ts) : '—'),
          h('td', null, r.length ? f.day(r[r.length - 1].ts) : '—'),
          h('td', { class: 'num' }, f.number(mean('flow_m3h'), 2)),
          h('td', { class: 'num' }, f.number(mean('turbidity_ntu'), 1)),
          h('td', { class: 'num' }, f.number(max('turbidity_ntu'), 1)),
          h('td', { class: 'num' }, f.number(max('sludge_pct'), 0)),
        ),
      );
    }
    mount(
      preview,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { 'data-total': String(total) },
          h('caption', null, t('history.previewCaption', { from: f.day(p[0] / 1000), to: f.day((p[1] - 1000) / 1000), tz })),
          h('thead', null, h('tr', null, ['history.terminal', 'history.readings', 'history.daysWithData', 'history.first', 'history.last', 'history.meanFlow', 'history.meanTurbidity', 'history.maxTurbidity', 'history.maxSludge'].map((k) => h('th', { scope: 'col' }, t(k))))),
          h('tbody', null, rows),
        ),
      ),
    );
    status.textContent = t('history.previewDone', { n: f.number(total, 0) });
  }

  async function download() {
    const p = period();
    const ids = [...chosen];
    if (!ids.length) return (status.textContent = t('history.chooseTerminals'));
    if (!p) return (status.textContent = t('chart.badRange'));
    const s = effectiveStep();
    const parts = [];
    try {
      for (let i = 0; i < ids.length; i++) {
        status.textContent = t('history.fetching', { i: i + 1, n: ids.length, id: ids[i] });
        const csv = await api.readingsCsv(ids[i], { from: rfc3339(p[0]), to: rfc3339(p[1]), step: s });
        parts.push(addLocalTime(csv, tz, { header: i === 0 }));
      }
    } catch (e) {
      status.textContent = t('error.generic', { detail: e.message });
      return;
    }
    const text = parts.join('');
    const rows = Math.max(0, text.split('\n').length - 2);
    const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
    const a = h('a', { href: url, download: exportFileName(ids, from, to, s, tz), hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    status.textContent = t('history.downloaded', { n: ctx.fmt.number(rows, 0) });
  }

  const filterInput = h('input', {
    id: 'h-filter',
    type: 'search',
    placeholder: t('alerts.searchHint'),
    onInput: (e) => {
      const q = e.target.value.toLowerCase();
      for (const b of boxes) b.hidden = q !== '' && !b.textContent.toLowerCase().includes(q);
    },
  });

  mount(
    main,
    h('div', { class: 'page-head' }, h('h1', null, t('page.history'))),
    h(
      'form',
      { class: 'card export-form', onSubmit: (e) => (e.preventDefault(), runPreview().catch((err) => (status.textContent = t('error.generic', { detail: err.message })))) },
      h(
        'fieldset',
        { class: 'terminal-choice' },
        h('legend', null, t('history.terminals')),
        h('div', { class: 'filters' },
          h('label', { for: 'h-filter' }, t('alerts.search')),
          filterInput,
          h('button', { type: 'button', 'data-action': 'select-all', onClick: () => setAll(true) }, t('history.selectAll')),
          h('button', { type: 'button', onClick: () => setAll(false) }, t('history.selectNone')),
        ),
        h('div', { class: 'checks' }, boxes),
      ),
      h(
        'fieldset',
        null,
        h('legend', null, t('history.period', { tz, offset: utcOffsetLabel(tz) })),
        h('div', { class: 'filters' },
          h('label', { for: 'h-from' }, t('chart.from')),
          fromInput,
          h('label', { for: 'h-to' }, t('history.toInclusive')),
          toInput,
        ),
        h('div', { class: 'tabs', role: 'group', 'aria-label': t('history.presets') },
          presets.map(([key, fn]) => h('button', { type: 'button', onClick: () => {
            [from, to] = fn();
            fromInput.value = from;
            toInput.value = to;
            sync();
          } }, t(`history.preset.${key}`))),
        ),
      ),
      stepRadios,
      h('p', { class: 'muted small' }, t('history.timesNote', { tz, offset: utcOffsetLabel(tz) })),
      h('p', { class: 'muted small' }, t('history.unitsNote')),
      h('div', { class: 'form-buttons' },
        h('button', { type: 'submit', 'data-action': 'preview' }, t('history.preview')),
        h('button', { type: 'button', class: 'primary', 'data-action': 'download', onClick: () => download() }, t('history.download')),
      ),
      status,
    ),
    preview,
    links,
  );
  drawLinks();
  return null;
}
