// One quantity over time with uPlot: the mean line, the min-max band for rollups, data gaps
// shaded grey and alert periods shaded in the severity's colour.

import uPlot from 'uplot';
import { ctx } from '../context.js';
import { t } from '../i18n.js';

const SEVERITY_FILL = {
  alarm: ['rgba(200, 30, 30, 0.12)', 'rgb(200, 30, 30)'],
  warning: ['rgba(230, 160, 0, 0.16)', 'rgb(200, 140, 0)'],
  maintenance: ['rgba(40, 90, 200, 0.10)', 'rgb(40, 90, 200)'],
};

function xValues(u, splits, _axis, _space, incr) {
  const f = ctx.fmt;
  if (incr < 86400) return splits.map((v) => f.time(v));
  if (incr < 28 * 86400) return splits.map((v) => f.day(v));
  // Months: the year only where it changes, so a year of ticks stays readable.
  let lastYear = null;
  return splits.map((v) => {
    const year = f.year(v);
    const label = year === lastYear ? f.monthName(v) : f.month(v);
    lastYear = year;
    return label;
  });
}

/** Draws the chart into `host`; returns `{destroy()}`. */
export function drawChart(host, { field, unit, digits, color, columns, periods, fromS, toS, height = 220 }) {
  const col = columns.fields[field];
  const stepped = columns.stepped;
  const data = stepped ? [columns.x, col.mean, col.min, col.max] : [columns.x, col.mean];
  const value = (u, v) => (v == null ? '—' : `${ctx.fmt.number(v, digits)} ${unit}`);
  const series = [
    { value: (u, v) => (v == null ? '—' : ctx.fmt.dateTimeSec(v)), label: t('chart.time') },
    { label: stepped ? t('chart.mean') : t(`q.${field}`), stroke: color, width: 2, value, spanGaps: false },
  ];
  if (stepped) {
    series.push(
      { label: t('chart.min'), stroke: color, width: 1, dash: [4, 4], value, spanGaps: false, alpha: 0.6 },
      { label: t('chart.max'), stroke: color, width: 1, dash: [4, 4], value, spanGaps: false, alpha: 0.6 },
    );
  }
  const shade = (u) => {
    const c = u.ctx;
    const { top, height: ht } = u.bbox;
    const x0 = (v) => Math.round(u.valToPos(v, 'x', true));
    c.save();
    for (const [a, b] of columns.gaps) {
      c.fillStyle = 'rgba(110, 110, 110, 0.16)';
      c.fillRect(x0(a), top, Math.max(1, x0(b) - x0(a)), ht);
    }
    for (const p of periods) {
      const [fill, strip] = SEVERITY_FILL[p.severity] || SEVERITY_FILL.warning;
      c.fillStyle = fill;
      c.fillRect(x0(p.from), top, Math.max(2, x0(p.to) - x0(p.from)), ht);
      c.fillStyle = strip;
      c.fillRect(x0(p.from), top, Math.max(2, x0(p.to) - x0(p.from)), 5 * devicePixelRatio);
    }
    c.restore();
  };
  const opts = {
    width: Math.max(280, host.clientWidth),
    height,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), ctx.fmt.timeZone),
    scales: { x: { time: true, range: [fromS, toS] }, y: { range: (u, min, max) => [Math.min(0, min ?? 0), (max ?? 1) * 1.1 || 1] } },
    series,
    bands: stepped ? [{ series: [3, 2], fill: `${color.replace('rgb', 'rgba').replace(')', ', 0.15)')}` }] : [],
    axes: [
      { values: xValues, stroke: 'currentColor', grid: { stroke: 'rgba(128,128,128,0.15)' } },
      { label: unit, stroke: 'currentColor', size: 56, grid: { stroke: 'rgba(128,128,128,0.15)' }, values: (u, splits) => splits.map((v) => ctx.fmt.number(v, 2)) },
    ],
    cursor: { sync: { key: 'weir-terminal' } },
    legend: { live: true },
    hooks: { drawClear: [shade] },
  };
  const plot = new uPlot(opts, data, host);
  const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, host.clientWidth), height }));
  resize.observe(host);
  return {
    destroy() {
      resize.disconnect();
      plot.destroy();
    },
  };
}
