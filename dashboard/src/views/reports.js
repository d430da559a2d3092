// Reports: the county's compliance over a period, the terminals ranked from the lowest
// compliance up, one terminal's report with its gaps, response times and daily flow; the
// county CSV from the API and a print layout.

import uPlot from 'uplot';
import { api } from '../api.js';
import { ctx } from '../context.js';
import { h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { utcOffsetLabel } from '../format.js';
import { store } from '../store.js';
import {
  PRESETS,
  complianceColumns,
  flowColumns,
  gapRows,
  localDate,
  percent,
  periodDays,
  periodQuery,
  presetPeriod,
  rankingRows,
  reportFileName,
  responseRows,
} from '../reports.js';

const BAR = 'rgb(11, 79, 108)';

function pct(rate) {
  const v = percent(rate);
  return v == null ? '—' : `${ctx.fmt.number(v, 1)} %`;
}

function figure(key, value, note) {
  return h('div', { class: 'figure', 'data-figure': key }, h('dt', null, t(`reports.fig.${key}`)), h('dd', null, h('strong', null, value), note ? h('span', { class: 'muted small' }, note) : null));
}

/** The sentence saying how compliance was counted. */
function basisText(c, perTerminal) {
  const f = ctx.fmt;
  const basis = c.basis === 'samples'
    ? t('reports.basis.samples', { within: f.number(c.samples_within, 0), n: f.number(c.samples, 0) })
    : t('reports.basis.time', { within: f.number(c.hours_within, 1), n: f.number(c.hours_measured, 1) });
  const limit = perTerminal && c.limit_ntu != null ? t('reports.limitOne', { limit: f.number(c.limit_ntu, 1) }) : t('reports.limitEach');
  return `${basis} ${limit}`;
}

/** A uPlot bar chart; `xs` is either time (Unix s) or positions with `labels`. */
function barChart(host, { x, y, labels = null, unit, digits, label, yMax = null, height = 240 }) {
  const f = ctx.fmt;
  const time = !labels;
  const opts = {
    width: Math.max(280, host.clientWidth || 600),
    height,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), f.timeZone),
    scales: {
      x: time
        ? { time: true, range: (u, min, max) => [min - 43200, max + 43200] }
        : { time: false, range: () => [-0.6, x.length - 0.4] },
      y: { range: (u, min, max) => [0, yMax ?? ((max ?? 1) * 1.1 || 1)] },
    },
    series: [
      {
        label: time ? t('reports.day') : t('reports.terminal'),
        value: (u, v) => (v == null ? '—' : time ? f.day(v) : labels[v] ?? ''),
      },
      {
        label,
        fill: 'rgba(11, 79, 108, 0.55)',
        stroke: BAR,
        width: 1,
        paths: uPlot.paths.bars({ size: [0.7, 60], align: 0 }),
        points: { show: false },
        value: (u, v) => (v == null ? '—' : `${f.number(v, digits)} ${unit}`),
      },
    ],
    axes: [
      time
        ? { stroke: 'currentColor', grid: { show: false }, incrs: [86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400], values: (u, splits) => splits.map((v) => f.day(v)) }
        : {
            stroke: 'currentColor',
            grid: { show: false },
            rotate: -90,
            size: 64,
            splits: () => x,
            values: (u, splits) => splits.map((v) => labels[v] ?? ''),
            font: '11px system-ui, sans-serif',
          },
      { label: unit, stroke: 'currentColor', size: 56, grid: { stroke: 'rgba(128,128,128,0.15)' }, values: (u, splits) => splits.map((v) => f.number(v, 1)) },
    ],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
  };
  const plot = new uPlot(opts, [x, y], host);
  const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, host.clientWidth), height }));
  resize.observe(host);
  return {
    destroy() {
      resize.disconnect();
      plot.destroy();
    },
  };
}

export function reportsView(main, { query }) {
  const tz = store.site.timezone;
  let preset = PRESETS.includes(query.get('period')) ? query.get('period') : 'lastMonth';
  const today = localDate(Date.now(), tz);
  let fromDate = /^\d{4}-\d{2}-\d{2}$/.test(query.get('from') || '') ? query.get('from') : `${today.slice(0, 8)}01`;
  let toDate = /^\d{4}-\d{2}-\d{2}$/.test(query.get('to') || '') ? query.get('to') : today;
  let selected = query.get('terminal') || null;
  let county = null;
  let charts = [];
  let detailCharts = [];
  let seq = 0;

  const status = h('p', { class: 'small', role: 'status', id: 'report-status' });
  const body = h('div', { class: 'report-body', 'aria-busy': 'true' });
  const detail = h('section', { class: 'report-terminal', 'aria-labelledby': 'report-terminal-title', hidden: true });
  const csvLink = h('a', { class: 'button-link', 'data-action': 'csv', href: api.countyReportCsvUrl({}) }, t('reports.csv'));

  const destroy = (list) => {
    for (const c of list) c.destroy();
    list.length = 0;
  };

  function sync() {
    const q = new URLSearchParams();
    if (preset !== 'lastMonth') q.set('period', preset);
    if (preset === 'custom') {
      q.set('from', fromDate);
      q.set('to', toDate);
    }
    if (selected) q.set('terminal', selected);
    const s = q.toString();
    window.history.replaceState(null, '', `/reports${s ? `?${s}` : ''}`);
  }

  function periodParams() {
    const p = presetPeriod(preset, Date.now(), tz, { fromDate, toDate });
    if (!p) return null;
    return periodQuery(preset, p);
  }

  async function load() {
    const params = periodParams();
    sync();
    for (const b of presetButtons) b.setAttribute('aria-pressed', String(b.value === preset));
    customBox.hidden = preset !== 'custom';
    if (!params) {
      status.textContent = t('reports.badPeriod');
      return;
    }
    const mine = ++seq;
    status.textContent = t('common.loading');
    body.setAttribute('aria-busy', 'true');
    let report;
    try {
      report = await api.countyReport(params);
    } catch (e) {
      if (mine !== seq) return;
      status.textContent = t('error.generic', { detail: e.message });
      body.setAttribute('aria-busy', 'false');
      return;
    }
    if (mine !== seq) return;
    county = report;
    const days = periodDays(report.period, tz);
    csvLink.href = api.countyReportCsvUrl(params);
    csvLink.setAttribute('download', reportFileName(days));
    status.textContent = '';
    drawCounty();
    if (selected && county.terminals.some((r) => r.terminal === selected)) drawTerminal(selected, false);
    else {
      selected = null;
      detail.hidden = true;
    }
    body.setAttribute('aria-busy', 'false');
  }

  function drawCounty() {
    destroy(charts);
    const f = ctx.fmt;
    const c = county;
    const rows = rankingRows(c);
    const cols = complianceColumns(rows);
    const chartHost = h('div', { class: 'chart-host county-chart', role: 'img', 'aria-label': t('reports.chart.compliance') });
    const table = h(
      'table',
      { class: 'ranking', 'data-rows': String(rows.length) },
      h('caption', null, t('reports.rankingCaption')),
      h(
        'thead',
        null,
        h('tr', null, ['reports.col.rank', 'reports.col.terminal', 'reports.col.compliance', 'reports.col.completeness', 'reports.col.gaps', 'reports.col.gapMinutes', 'reports.col.uptime', 'reports.col.hoursInAlarm', 'reports.col.alerts', 'reports.col.dispatch'].map((k) => h('th', { scope: 'col', class: k === 'reports.col.terminal' ? null : 'num' }, t(k)))),
      ),
      h(
        'tbody',
        null,
        rows.map((r) =>
          h(
            'tr',
            { 'data-terminal': r.id, class: r.id === selected ? 'selected' : null },
            h('td', { class: 'num' }, String(r.rank)),
            h(
              'th',
              { scope: 'row' },
              h(
                'a',
                {
                  href: `/reports?terminal=${encodeURIComponent(r.id)}`,
                  'data-terminal-link': r.id,
                  onClick: (e) => {
                    e.preventDefault();
                    drawTerminal(r.id, true);
                  },
                },
                r.id,
              ),
              ' ',
              h('span', { class: 'muted small', translate: 'no' }, r.name),
            ),
            h('td', { class: 'num' }, pct(r.compliance)),
            h('td', { class: 'num' }, pct(r.completeness)),
            h('td', { class: 'num', 'data-gaps': r.gaps }, f.number(r.gaps, 0)),
            h('td', { class: 'num' }, f.number(r.gapMinutes, 0)),
            h('td', { class: 'num' }, pct(r.uptime)),
            h('td', { class: 'num' }, f.number(r.hoursInAlarm, 1)),
            h('td', { class: 'num' }, f.number(r.alerts, 0)),
            h('td', { class: 'num' }, pct(r.dispatchWithin)),
          ),
        ),
      ),
    );
    mount(
      body,
      h(
        'section',
        { class: 'card county', 'aria-labelledby': 'county-title' },
        h('h2', { id: 'county-title' }, t('reports.county')),
        h('p', { class: 'period-line' }, t('reports.periodLine', { from: f.date(Date.parse(c.period.from) / 1000), to: f.date((Date.parse(c.period.to) - 1000) / 1000), tz: c.period.timezone, offset: utcOffsetLabel(c.period.timezone) })),
        h(
          'dl',
          { class: 'figures' },
          figure('compliance', pct(c.compliance.rate), basisText(c.compliance, false)),
          figure('completeness', pct(c.completeness_rate)),
          figure('uptime', pct(c.uptime), t('reports.uptimeNote')),
          figure('hoursInAlarm', f.number(c.hours_in_alarm, 1)),
          figure('alerts', f.number(c.alerts_raised, 0)),
        ),
        h('p', { class: 'muted small' }, t('reports.target')),
      ),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'compliance-chart-title' },
        h('h2', { id: 'compliance-chart-title' }, t('reports.chart.compliance')),
        h('p', { class: 'muted small' }, t('reports.chart.complianceNote')),
        chartHost,
      ),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'ranking-title' },
        h('h2', { id: 'ranking-title' }, t('reports.ranking')),
        h('p', { class: 'muted small no-print' }, t('reports.rankingHint')),
        h('div', { class: 'table-wrap' }, table),
      ),
    );
    charts.push(barChart(chartHost, { x: cols.x, y: cols.y, labels: cols.ids, unit: '%', digits: 1, label: t('reports.fig.compliance'), yMax: 100 }));
  }

  function drawTerminal(id, scroll) {
    destroy(detailCharts);
    const r = county?.terminals.find((x) => x.terminal === id);
    if (!r) return;
    selected = id;
    sync();
    for (const tr of body.querySelectorAll('tr[data-terminal]')) tr.classList.toggle('selected', tr.dataset.terminal === id);
    const f = ctx.fmt;
    const flow = flowColumns(r, tz);
    const gaps = gapRows(r);
    const resp = responseRows(r);
    const flowHost = h('div', { class: 'chart-host flow-chart', role: 'img', 'aria-label': t('reports.chart.flow') });
    const sourceText = flow.source === 'mixed'
      ? t('reports.flow.mixed', { t: flow.counts.totaliser, i: flow.counts.integrated })
      : flow.source
        ? t(`reports.flow.${flow.source}`)
        : t('reports.flow.none');
    detail.hidden = false;
    mount(
      detail,
      h(
        'div',
        { class: 'card' },
        h(
          'div',
          { class: 'page-head' },
          h('h2', { id: 'report-terminal-title', 'data-terminal': id }, t('reports.terminalTitle', { id }), ' ', h('span', { translate: 'no' }, r.name)),
          h('a', { href: `/terminals/${encodeURIComponent(id)}`, class: 'small no-print' }, t('reports.openTerminal')),
        ),
        h(
          'dl',
          { class: 'figures' },
          figure('compliance', pct(r.compliance.rate), basisText(r.compliance, true)),
          figure('completeness', pct(r.completeness.rate), t('reports.completenessNote', { received: f.number(r.completeness.received, 0), expected: f.number(r.completeness.expected, 0), s: f.number(r.completeness.interval_s, 0), faults: f.number(r.completeness.with_faults, 0) })),
          figure('uptime', pct(r.uptime)),
          figure('hoursInAlarm', f.number(r.hours_in_alarm, 1)),
          figure('alerts', f.number(r.alerts_raised, 0), Object.entries(r.alerts_by_rule || {}).map(([rule, n]) => `${t(`rule.${rule}`)} ${f.number(n, 0)}`).join(' · ') || null),
        ),
      ),
      h(
        'div',
        { class: 'card' },
        h('h3', null, t('reports.chart.flow')),
        h('p', { class: 'muted small', 'data-flow-source': flow.source || 'none' }, sourceText, ' ', t('reports.flow.total', { v: f.number(flow.total, 1) })),
        flow.x.length ? flowHost : h('p', null, t('reports.flow.noDays')),
      ),
      h(
        'div',
        { class: 'card' },
        h('h3', null, t('reports.response')),
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'response' },
            h('thead', null, h('tr', null, ['reports.col.step', 'reports.col.n', 'reports.col.median', 'reports.col.p90', 'reports.col.within'].map((k) => h('th', { scope: 'col', class: k === 'reports.col.step' ? null : 'num' }, t(k))))),
            h(
              'tbody',
              null,
              resp.map((s) =>
                h(
                  'tr',
                  { 'data-step': s.step },
                  h('th', { scope: 'row' }, t(`reports.step.${s.step}`)),
                  h('td', { class: 'num' }, f.number(s.n, 0)),
                  h('td', { class: 'num' }, f.number(s.median, 0)),
                  h('td', { class: 'num' }, f.number(s.p90, 0)),
                  h('td', { class: 'num' }, s.step === 'acknowledge' && s.within == null ? t('reports.noTarget') : pct(s.within)),
                ),
              ),
            ),
          ),
        ),
      ),
      h(
        'div',
        { class: 'card' },
        h('h3', null, t('reports.gaps', { n: f.number(gaps.length, 0) })),
        gaps.length
          ? h(
              'div',
              { class: 'table-wrap' },
              h(
                'table',
                { class: 'gaps' },
                h('caption', { class: 'muted small' }, t('reports.gapsCaption', { tz, offset: utcOffsetLabel(tz) })),
                h('thead', null, h('tr', null, ['reports.col.start', 'reports.col.end', 'reports.col.minutes'].map((k) => h('th', { scope: 'col', class: k === 'reports.col.minutes' ? 'num' : null }, t(k))))),
                h('tbody', null, gaps.map((g) => h('tr', null, h('td', null, f.dateTime(g.start / 1000)), h('td', null, f.dateTime(g.end / 1000)), h('td', { class: 'num' }, f.number(g.minutes, 0))))),
              ),
            )
          : h('p', null, t('reports.noGaps')),
      ),
    );
    if (flow.x.length) detailCharts.push(barChart(flowHost, { x: flow.x, y: flow.y, unit: 'm³', digits: 1, label: t('reports.flow.volume'), height: 220 }));
    if (scroll) detail.scrollIntoView({ block: 'start' });
  }

  const presetButtons = PRESETS.map((p) =>
    h(
      'button',
      {
        type: 'button',
        value: p,
        'data-preset': p,
        'aria-pressed': String(p === preset),
        onClick: () => {
          preset = p;
          if (p !== 'custom') load();
          else {
            customBox.hidden = false;
            for (const b of presetButtons) b.setAttribute('aria-pressed', String(b.value === preset));
          }
        },
      },
      t(`reports.preset.${p}`),
    ),
  );
  const fromInput = h('input', { id: 'r-from', type: 'date', value: fromDate, required: true, onChange: (e) => (fromDate = e.target.value) });
  const toInput = h('input', { id: 'r-to', type: 'date', value: toDate, required: true, onChange: (e) => (toDate = e.target.value) });
  const customBox = h(
    'form',
    {
      class: 'filters custom-period',
      hidden: preset !== 'custom',
      onSubmit: (e) => {
        e.preventDefault();
        preset = 'custom';
        load();
      },
    },
    h('label', { for: 'r-from' }, t('chart.from')),
    fromInput,
    h('label', { for: 'r-to' }, t('history.toInclusive')),
    toInput,
    h('button', { type: 'submit', 'data-action': 'custom-period' }, t('reports.show')),
  );

  mount(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', null, t('page.reports')),
      h(
        'div',
        { class: 'report-tools no-print' },
        csvLink,
        h('button', { type: 'button', 'data-action': 'print', onClick: () => window.print() }, t('reports.print')),
      ),
    ),
    h(
      'div',
      { class: 'card no-print period-picker' },
      h('div', { class: 'tabs', role: 'group', 'aria-label': t('reports.period', { tz, offset: utcOffsetLabel(tz) }) }, presetButtons),
      h('p', { class: 'muted small' }, t('reports.period', { tz, offset: utcOffsetLabel(tz) })),
      customBox,
      status,
    ),
    body,
    detail,
  );
  load();
  return () => {
    seq++;
    destroy(charts);
    destroy(detailCharts);
  };
}
