// The terminals on a plain SVG map: positions from the registry, scaled to their bounding
// box, village names beside the dots. No tiles, so it works without internet.

import { s } from '../dom.js';
import { t } from '../i18n.js';

const W = 1000;
const PAD = 60;
const KM_PER_DEG_LAT = 111.32;

/** x/y in the SVG for each positioned terminal, and the SVG height; pure, for tests. */
export function project(terminals, width = W, pad = PAD) {
  const placed = terminals.filter((t) => Number.isFinite(t.lat) && Number.isFinite(t.lon));
  if (placed.length === 0) return { points: [], height: width / 2, kmPerUnit: null };
  const lats = placed.map((t) => t.lat);
  const lons = placed.map((t) => t.lon);
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
  // Equirectangular around the middle latitude: right for a county, a few tens of km.
  const k = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
  const spanX = Math.max((maxLon - minLon) * k, 1e-4);
  const spanY = Math.max(maxLat - minLat, 1e-4);
  const inner = width - 2 * pad;
  // A flat row of terminals still gets a readable height.
  const scale = Math.min(inner / spanX, (inner * 0.9) / spanY);
  const height = Math.max(spanY * scale + 2 * pad, width * 0.35);
  const offX = (width - spanX * scale) / 2;
  const offY = (height - spanY * scale) / 2;
  const points = placed.map((term) => ({
    id: term.id,
    x: offX + (term.lon - minLon) * k * scale,
    y: offY + (maxLat - term.lat) * scale,
  }));
  return { points, height, kmPerUnit: KM_PER_DEG_LAT / scale };
}

/** Label boxes that do not overlap: tries right, left, above, below each dot. */
function placeLabels(items, fontSize) {
  const dot = 14;
  // Every dot is an obstacle from the start, so no label hides another terminal.
  const boxes = items.map(({ x, y }) => ({ x: x - dot, y: y - dot, w: 2 * dot, h: 2 * dot }));
  const overlaps = (b) => boxes.some((o) => b.x < o.x + o.w && o.x < b.x + b.w && b.y < o.y + o.h && o.y < b.y + b.h);
  return items.map(({ x, y, text }) => {
    const w = [...text].reduce((n, ch) => n + (ch.charCodeAt(0) > 0x2e80 ? 1 : 0.6), 0) * fontSize;
    const h = fontSize * 1.2;
    const options = [
      { x: x + dot + 1, y: y - h / 2, anchor: 'start' },
      { x: x - dot - 1 - w, y: y - h / 2, anchor: 'end' },
      { x: x - w / 2, y: y - dot - 1 - h, anchor: 'middle' },
      { x: x - w / 2, y: y + dot + 1, anchor: 'middle' },
    ];
    const choice = options.find((o) => !overlaps({ ...o, w, h })) || null;
    if (choice) boxes.push({ ...choice, w, h });
    return choice && { ...choice, w, h };
  });
}

function niceKm(km) {
  const steps = [0.5, 1, 2, 5, 10, 20, 50, 100];
  return steps.reverse().find((s) => s <= km) || 0.5;
}

/** Draws the map into `svgHost`; returns `{update(id, state, dimmed)}` to recolour a dot. */
export function drawMap(svgHost, terminals, stateOf, labelOf) {
  const { points, height, kmPerUnit } = project(terminals);
  const byId = new Map(terminals.map((term) => [term.id, term]));
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${Math.round(height)}`,
    class: 'map',
    role: 'group',
    'aria-label': t('map.label', { n: points.length }),
  });
  svg.append(s('rect', { x: 0, y: 0, width: W, height, class: 'map-bg' }));
  const fontSize = 28;
  const labels = placeLabels(
    points.map((p) => ({ ...p, text: labelOf(byId.get(p.id)) })),
    fontSize,
  );
  const dots = new Map();
  points.forEach((p, i) => {
    const term = byId.get(p.id);
    const state = stateOf(term);
    const label = labels[i];
    const g = s(
      'a',
      {
        href: `/terminals/${encodeURIComponent(p.id)}`,
        class: ['map-point', `state-${state}`],
        'data-terminal': p.id,
        'aria-label': `${p.id} ${term.name || ''} ${labelOf(term)}: ${t(`state.${state}`)}`,
      },
      s('title', null, `${p.id} · ${term.name || ''} · ${t(`state.${state}`)}`),
      s('circle', { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: 13, class: 'dot' }),
      label
        ? s(
            'text',
            {
              x: (label.anchor === 'start' ? label.x : label.anchor === 'end' ? label.x + label.w : label.x + label.w / 2).toFixed(1),
              y: (label.y + label.h * 0.8).toFixed(1),
              'text-anchor': label.anchor,
              'font-size': fontSize,
              class: 'map-label',
              translate: 'no',
            },
            labelOf(term),
          )
        : null,
    );
    dots.set(p.id, g);
    svg.append(g);
  });
  if (kmPerUnit) {
    const km = niceKm((W / 5) * kmPerUnit);
    const len = km / kmPerUnit;
    const y = height - 20;
    svg.append(
      s(
        'g',
        { class: 'scale', 'aria-hidden': 'true' },
        s('line', { x1: 20, y1: y, x2: 20 + len, y2: y }),
        s('line', { x1: 20, y1: y - 6, x2: 20, y2: y + 2 }),
        s('line', { x1: 20 + len, y1: y - 6, x2: 20 + len, y2: y + 2 }),
        s('text', { x: 20 + len / 2, y: y - 10, 'text-anchor': 'middle', 'font-size': 18 }, `${km} km`),
      ),
      s('text', { x: W - 30, y: 40, 'text-anchor': 'middle', 'font-size': 24, class: 'north', 'aria-hidden': 'true' }, '↑ N'),
    );
  }
  svgHost.replaceChildren(svg);
  return {
    update(id, state, dimmed) {
      const g = dots.get(id);
      if (!g) return;
      g.setAttribute('class', ['map-point', `state-${state}`, dimmed ? 'dimmed' : ''].join(' ').trim());
      const term = byId.get(id);
      g.setAttribute('aria-label', `${id} ${term.name || ''} ${labelOf(term)}: ${t(`state.${state}`)}`);
      g.querySelector('title').textContent = `${id} · ${term.name || ''} · ${t(`state.${state}`)}`;
    },
    unplaced: terminals.filter((term) => !Number.isFinite(term.lat) || !Number.isFinite(term.lon)).map((term) => term.id),
  };
}
