// Overview: every terminal as a tile and on the map, coloured by state, updated live.

import { ctx } from '../context.js';
import { h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { QUANTITIES, can, terminalState, compareAlerts } from '../state.js';
import { api } from '../api.js';
import { firmwareRows, isUnderWay, stateCounts, targetPercent } from '../firmware.js';
import { activeAlerts, store, subscribe } from '../store.js';
import { toMs } from '../format.js';
import { drawMap } from './map.js';

const STATES = ['alarm', 'warning', 'offline', 'ok'];
let firstRenderMarked = false;

/** A terminal's latest values, one `dd` each: the number, or the fault the node reported. */
export function metricList(term) {
  const latest = term.latest || {};
  return h(
    'dl',
    { class: 'metrics' },
    QUANTITIES.map(({ field, unit, digits }) => {
      const fault = latest.faults?.[field];
      return h(
        'div',
        { class: 'metric', 'data-field': field },
        h('dt', null, t(`q.${field}`)),
        h(
          'dd',
          null,
          fault
            ? h('span', { class: 'fault', title: t(`fault.${fault}`) }, t('fault.short'), ' ', h('small', null, t(`fault.${fault}`)))
            : [h('span', { class: 'num' }, ctx.fmt.number(latest[field], digits)), ' ', h('small', null, unit)],
        ),
      );
    }),
  );
}

export function stateBadge(state) {
  return h('span', { class: ['state', `state-${state}`], 'data-state': state }, h('span', { class: 'shape', 'aria-hidden': 'true' }), t(`state.${state}`));
}

export function overviewView(main) {
  performance.mark('weir:overview:render-start');
  const query = new URLSearchParams(location.search);
  let filter = STATES.includes(query.get('state')) ? query.get('state') : 'all';
  const tiles = new Map();
  let map = null;
  const nowMs = () => Date.now();

  const alertsByTerminal = () => {
    const m = new Map();
    for (const a of activeAlerts()) {
      if (!m.has(a.terminal)) m.set(a.terminal, []);
      m.get(a.terminal).push(a);
    }
    for (const list of m.values()) list.sort(compareAlerts);
    return m;
  };
  let byTerminal = alertsByTerminal();
  const stateOf = (term) => terminalState(term, byTerminal.get(term.id) || [], nowMs());
  const placeOf = (term) => term.village || term.name || term.id;

  const summary = h('div', { class: 'summary', role: 'group', 'aria-label': t('overview.filter') });
  const grid = h('ul', { class: 'tiles', 'aria-label': t('overview.grid') });
  const mapHost = h('div', { class: 'map-host' });
  const mapNote = h('p', { class: 'muted small' });
  const alertNote = h('p', { class: 'notice', hidden: store.alertsAvailable });

  function fillTile(a, term) {
    const state = stateOf(term);
    const alerts = byTerminal.get(term.id) || [];
    const ageS = term.latest ? (nowMs() - toMs(term.latest.ts)) / 1000 : null;
    a.className = `tile state-${state}`;
    a.dataset.state = state;
    a.parentElement?.toggleAttribute('hidden', filter !== 'all' && filter !== state);
    a.replaceChildren(
      h('div', { class: 'tile-head' }, h('span', { class: 'tid' }, term.id), stateBadge(state)),
      h('div', { class: 'tname', translate: 'no' }, term.name, term.village ? h('span', { class: 'village' }, ` · ${term.village}`) : null),
      metricList(term),
      h(
        'div',
        { class: 'tile-foot' },
        h(
          'span',
          { class: 'age', 'data-age-s': ageS == null ? '' : String(Math.round(ageS)) },
          term.latest ? t('overview.lastReading', { age: ctx.fmt.age(ageS) }) : t('overview.noReading'),
        ),
        alerts.length
          ? h('span', { class: ['tile-alert', `sev-${alerts[0].severity}`] }, t(`rule.${alerts[0].rule}`), alerts.length > 1 ? ` +${alerts.length - 1}` : '')
          : null,
      ),
    );
    return state;
  }

  // Built once and updated in place, so a focused chip keeps focus as counts change.
  const chips = new Map();
  for (const k of ['all', ...STATES]) {
    const count = h('span', { class: 'count', 'data-count': k }, '0');
    const chip = h(
      'button',
      {
        type: 'button',
        class: ['chip', `chip-${k}`],
        'data-filter': k,
        onClick: () => {
          filter = k;
          history.replaceState(null, '', k === 'all' ? '/' : `/?state=${k}`);
          renderAll();
        },
      },
      k === 'all' ? t('overview.all') : t(`state.${k}`),
      count,
    );
    chips.set(k, { chip, count });
    summary.append(chip);
  }

  function renderSummary() {
    const counts = { all: 0, alarm: 0, warning: 0, offline: 0, ok: 0 };
    for (const term of store.terminals.values()) {
      counts.all++;
      counts[stateOf(term)]++;
    }
    for (const [k, { chip, count }] of chips) {
      chip.setAttribute('aria-pressed', String(filter === k));
      count.textContent = String(counts[k]);
    }
  }

  function renderAll() {
    byTerminal = alertsByTerminal();
    tiles.clear();
    const terms = [...store.terminals.values()].sort((a, b) => a.id.localeCompare(b.id));
    mount(
      grid,
      terms.map((term) => {
        const a = h('a', { href: `/terminals/${encodeURIComponent(term.id)}`, 'data-terminal': term.id });
        const li = h('li', null, a);
        fillTile(a, term);
        tiles.set(term.id, a);
        return li;
      }),
    );
    map = drawMap(mapHost, terms, stateOf, placeOf);
    for (const term of terms) map.update(term.id, stateOf(term), filter !== 'all' && filter !== stateOf(term));
    mapNote.textContent = map.unplaced.length ? t('map.unplaced', { ids: map.unplaced.join(', ') }) : t('map.note');
    alertNote.hidden = store.alertsAvailable;
    renderSummary();
  }

  // Live events only mark their terminal; one animation frame redraws every marked tile and the
  // counts once. Nodes that replay a backlog send hundreds of readings a second, and a redraw
  // per reading would keep the page too busy to answer its operator.
  const dirty = new Set();
  let frame = 0;
  function updateOne(id) {
    dirty.add(id);
    if (!frame) frame = requestAnimationFrame(redrawDirty);
  }
  function redrawDirty() {
    frame = 0;
    const ids = [...dirty];
    dirty.clear();
    for (const id of ids) {
      const term = store.terminals.get(id);
      const a = tiles.get(id);
      if (!term || !a) return renderAll();
      const state = fillTile(a, term);
      map?.update(id, state, filter !== 'all' && filter !== state);
      a.classList.add('flash');
      clearTimeout(flashTimers.get(id));
      flashTimers.set(
        id,
        setTimeout(() => {
          flashTimers.delete(id);
          a.classList.remove('flash');
        }, 1200),
      );
    }
    renderSummary();
  }
  const flashTimers = new Map();

  mount(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', null, t('page.overview')),
      summary,
    ),
    alertNote,
    h(
      'div',
      { class: 'overview' },
      h('section', { class: 'grid-section', 'aria-labelledby': 'grid-title' }, h('h2', { id: 'grid-title', class: 'visually-hidden' }, t('overview.grid')), grid),
      h(
        'section',
        { class: 'map-section', 'aria-labelledby': 'map-title' },
        h('h2', { id: 'map-title' }, t('map.title')),
        mapHost,
        mapNote,
      ),
    ),
  );
  alertNote.textContent = t('alerts.unavailable');
  renderAll();
  const firmware = firmwareSection(main);

  if (!firstRenderMarked && store.terminals.size > 0) {
    firstRenderMarked = true;
    performance.mark('weir:overview:rendered');
    performance.measure('weir:overview:render', 'weir:overview:render-start', 'weir:overview:rendered');
    performance.measure('weir:overview:since-navigation', { start: 0, end: 'weir:overview:rendered' });
    // The frame that shows it: marked once the browser has painted.
    requestAnimationFrame(() =>
      setTimeout(() => {
        performance.mark('weir:overview:painted');
        performance.measure('weir:overview:until-painted', { start: 0, end: 'weir:overview:painted' });
      }, 0),
    );
  }

  const offs = [
    subscribe('terminal', updateOne),
    subscribe('terminals', renderAll),
    subscribe('alerts', renderAll),
    subscribe('alert', ({ alert }) => {
      byTerminal = alertsByTerminal();
      updateOne(alert.terminal);
    }),
  ];
  // Ages and offline states move with the clock, not with events.
  const tick = setInterval(() => {
    for (const [id, a] of tiles) {
      const term = store.terminals.get(id);
      const before = a.dataset.state;
      const state = fillTile(a, term);
      if (state !== before) map?.update(id, state, filter !== 'all' && filter !== state);
    }
    renderSummary();
  }, 15000);
  return () => {
    offs.forEach((off) => off());
    clearInterval(tick);
    cancelAnimationFrame(frame);
    for (const timer of flashTimers.values()) clearTimeout(timer);
    firmware.stop();
  };
}

/** Firmware rollouts under the overview: each rollout's progress, and each node's firmware and
 * update in a folded table. Roles that may see them only; refreshed every 10 s. */
function firmwareSection(main) {
  const box = h('section', { class: 'firmware-section', 'aria-labelledby': 'fw-title', hidden: true });
  main.append(box);
  let open = false;
  async function load() {
    if (!can(store.me?.role, 'firmware')) return;
    let view;
    try {
      view = await api.firmware();
    } catch {
      return;
    }
    if (!view.targets.length) {
      box.hidden = true;
      return;
    }
    const state = (s) => t(`firmware.state.${s}`);
    const rollouts = view.rollouts.map((r) =>
      h(
        'li',
        { class: 'rollout', 'data-version': r.version, 'data-under-way': String(isUnderWay(r)) },
        h('strong', { translate: 'no' }, t('firmware.rollout', { version: r.version, installed: r.states.installed || 0, n: r.terminals })),
        ' ',
        h('meter', { min: 0, max: 1, value: r.progress, 'aria-label': t('firmware.progress') }),
        ' ',
        h('span', { class: 'muted small' }, stateCounts(r).map(([s, n]) => `${n} ${state(s)}`).join(', ')),
      ),
    );
    const rows = firmwareRows([...store.terminals.values()], view.targets).map((row) =>
      h(
        'tr',
        { 'data-terminal': row.id },
        h('td', null, h('a', { href: `/terminals/${encodeURIComponent(row.id)}` }, row.id)),
        h('td', { translate: 'no' }, row.running ?? '—'),
        h('td', null, row.target ? `${row.target.version}: ${state(row.target.state)}${row.target.state === 'downloading' ? ` ${targetPercent(row.target)} %` : ''}` : '—'),
      ),
    );
    const details = h(
      'details',
      { onToggle: (e) => (open = e.target.open) },
      h('summary', null, t('firmware.terminals')),
      h('table', { class: 'firmware-table' }, h('thead', null, h('tr', null, ['terminal', 'running', 'update'].map((c) => h('th', { scope: 'col' }, t(`firmware.col.${c}`))))), h('tbody', null, rows)),
    );
    details.open = open;
    mount(box, h('h2', { id: 'fw-title' }, t('firmware.title')), h('ul', { class: 'rollouts' }, rollouts), details);
    box.hidden = false;
  }
  load();
  const every = setInterval(load, 10000);
  return { stop: () => clearInterval(every) };
}
