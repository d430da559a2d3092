// Alert inbox: active alerts by severity and age, grouped into incidents, with the actions the
// user's role allows; each alert's history on demand.

import { api } from '../api.js';
import { ctx } from '../context.js';
import { h, mount } from '../dom.js';
import { language, t } from '../i18n.js';
import { alertActions, compareAlerts, crewCovers, groupByIncident, isActive, SEVERITIES } from '../state.js';
import { durationParts, toMs } from '../format.js';
import { activeAlerts, putAlert, store, subscribe } from '../store.js';
import { picturesAround } from './pictures.js';
import { alertDetail, alertNumber, alertTitle, historyNote, incidentTitle, resolutionText } from '../texts.js';

let crewsCache = null;
function crews() {
  crewsCache ??= api.crews().catch(() => []);
  return crewsCache;
}

function duration(seconds) {
  const [n, unit] = durationParts(seconds);
  return t(`duration.${unit}`, { n });
}

function tr(prefix, key) {
  const k = `${prefix}.${key}`;
  const s = t(k);
  return s === k ? key : s;
}

/** One alert as a card, with its facts, the actions allowed, and its history. */
export function alertCard(alert, { compact = false, openHistory = false } = {}) {
  const role = store.me?.role;
  const term = store.terminals.get(alert.terminal);
  // Built here in the UI's language: the gateway wrote its own in alerts.language.
  const words = { lang: language(), fmt: ctx.fmt };
  const title = alertTitle(alert, words);
  const detail = alertDetail(alert, words);
  const value = alertNumber(alert, alert.value, words);
  const threshold = alertNumber(alert, alert.threshold, words);
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const formBox = h('div', { class: 'action-form' });
  const wo = alert.work_order;
  const openFor = ((alert.resolved_at ? toMs(alert.resolved_at) : Date.now()) - toMs(alert.opened_at)) / 1000;

  const card = h('article', {
    class: ['alert-card', `sev-${alert.severity}`, isActive(alert) ? '' : 'resolved'],
    'data-alert-id': alert.id,
    'data-terminal': alert.terminal,
    'data-state': alert.state,
    tabindex: '-1',
    'aria-labelledby': `alert-${alert.id}-title`,
  });

  async function run(action, body) {
    error.hidden = true;
    card.querySelectorAll('.actions button, .action-form button').forEach((b) => (b.disabled = true));
    try {
      const updated = await api.alertAction(alert.id, action, body);
      // The form closes and an open history shows the new entry. A note leaves the alert as
      // it was, so nothing redraws this card; any other change does (from the store).
      formBox.replaceChildren();
      card.querySelectorAll('.actions button').forEach((b) => (b.disabled = false));
      if (details.open) loadHistory();
      putAlert(updated);
    } catch (e) {
      error.textContent = e.status === 409 ? t('alerts.conflict', { detail: e.message }) : t('error.generic', { detail: e.message });
      error.hidden = false;
      card.querySelectorAll('.actions button, .action-form button').forEach((b) => (b.disabled = false));
    }
  }

  function noteForm(action, { required, label }) {
    const id = `f-${alert.id}-${action}`;
    const form = h(
      'form',
      {
        class: 'inline-form',
        onSubmit: (e) => {
          e.preventDefault();
          const note = form.elements.note.value.trim();
          run(action, note ? { note } : required ? { note } : {});
        },
      },
      h('label', { for: id }, label),
      h('textarea', { id, name: 'note', rows: 2, required }),
      h('div', { class: 'form-buttons' },
        h('button', { type: 'submit', class: 'primary', 'data-submit': action }, t(`action.${action}`)),
        h('button', { type: 'button', class: 'ghost', onClick: () => formBox.replaceChildren() }, t('common.cancel')),
      ),
    );
    return form;
  }

  async function dispatchForm() {
    const list = await crews();
    const id = `f-${alert.id}-crew`;
    const mine = list.find((c) => crewCovers(c, alert.terminal));
    const field = list.length
      ? h('select', { id, name: 'crew', required: true }, list.map((c) => h('option', { value: c.name, selected: c === mine }, c === mine ? t('alerts.crewZone', { crew: c.name }) : c.name)))
      : h('input', { id, name: 'crew', autocomplete: 'off', placeholder: t('alerts.zoneCrew') });
    const form = h(
      'form',
      {
        class: 'inline-form',
        onSubmit: (e) => {
          e.preventDefault();
          // No crew named: the gateway sends the terminal's zone crew.
          const crew = form.elements.crew.value.trim();
          run('dispatch', crew ? { crew } : {});
        },
      },
      h('label', { for: id }, t('alerts.crew')),
      field,
      h('div', { class: 'form-buttons' },
        h('button', { type: 'submit', class: 'primary', 'data-submit': 'dispatch' }, t('action.dispatch')),
        h('button', { type: 'button', class: 'ghost', onClick: () => formBox.replaceChildren() }, t('common.cancel')),
      ),
    );
    return form;
  }

  async function assignForm() {
    const list = await crews();
    const id = `f-${alert.id}-assignee`;
    const dl = `dl-${alert.id}`;
    const form = h(
      'form',
      { class: 'inline-form', onSubmit: (e) => (e.preventDefault(), run('assign', { assignee: form.elements.assignee.value.trim() })) },
      h('label', { for: id }, t('alerts.assignee')),
      h('input', { id, name: 'assignee', required: true, list: dl, value: alert.assignee || '', autocomplete: 'off' }),
      h('datalist', { id: dl }, [store.me?.name, ...list.map((c) => c.name)].filter(Boolean).map((n) => h('option', { value: n }))),
      h('div', { class: 'form-buttons' },
        h('button', { type: 'submit', class: 'primary', 'data-submit': 'assign' }, t('action.assign')),
        h('button', { type: 'button', class: 'ghost', onClick: () => formBox.replaceChildren() }, t('common.cancel')),
      ),
    );
    return form;
  }

  const opensForm = {
    assign: assignForm,
    dispatch: dispatchForm,
    resolve: () => noteForm('resolve', { required: true, label: t('alerts.resolveNote') }),
    note: () => noteForm('note', { required: true, label: t('alerts.note') }),
  };

  const actions = alertActions(alert, role).map((action) =>
    h(
      'button',
      {
        type: 'button',
        class: action === 'acknowledge' ? 'primary' : '',
        'data-action': action,
        onClick: async () => {
          if (opensForm[action]) {
            const form = await opensForm[action]();
            formBox.replaceChildren(form);
            form.querySelector('textarea, input, select')?.focus();
          } else {
            run(action, {});
          }
        },
      },
      t(`action.${action}`),
    ),
  );

  const history = h('ol', { class: 'history-list' });
  const picturesBox = h('div', { class: 'alert-pictures-box' });
  let historySeq = 0;
  async function loadHistory() {
    const seq = ++historySeq;
    history.dataset.loaded = '1';
    history.replaceChildren(h('li', { class: 'muted' }, t('common.loading')));
    try {
      const full = await api.alert(alert.id);
      // Asked again meanwhile (a note just added): the later answer shows.
      if (seq !== historySeq) return;
      mount(
        history,
        (full.history || []).map((e) =>
          h(
            'li',
            { 'data-action': e.action },
            h('time', { datetime: e.at }, ctx.fmt.dateTime(e.at)),
            ' ',
            h('strong', null, tr('event', e.action)),
            e.who ? [' · ', h('span', { translate: 'no' }, e.who)] : '',
            // The gateway's own notes in the UI's language; people's as they wrote them.
            e.note ? h('q', { translate: e.who === 'weir' ? null : 'no' }, historyNote(alert, e, words)) : null,
          ),
        ),
      );
      if (!full.history?.length) history.append(h('li', { class: 'muted' }, t('alerts.noHistory')));
      mount(picturesBox, h('h4', null, t('pictures.aroundAlert')), picturesAround(full.pictures));
    } catch (e) {
      if (seq !== historySeq) return;
      delete history.dataset.loaded;
      history.replaceChildren(h('li', { class: 'error' }, t('error.generic', { detail: e.message })));
    }
  }
  const details = h(
    'details',
    {
      class: 'history',
      onToggle: () => {
        if (details.open && !history.dataset.loaded) loadHistory();
      },
    },
    h('summary', null, t('alerts.history')),
    history,
    picturesBox,
  );
  if (openHistory) {
    details.open = true;
    loadHistory();
  }

  const fact = (label, ...value) => h('div', null, h('dt', null, label), h('dd', null, ...value));
  const targets = wo?.targets_met;
  mount(
    card,
    h(
      'header',
      { class: 'alert-head' },
      h('span', { class: ['sev', `sev-${alert.severity}`] }, h('span', { class: 'shape', 'aria-hidden': 'true' }), tr('severity', alert.severity)),
      h(
        'h3',
        { id: `alert-${alert.id}-title` },
        tr('rule', alert.rule),
        ' · ',
        compact ? title : h('a', { href: `/terminals/${encodeURIComponent(alert.terminal)}` }, alert.terminal, term?.name ? [' ', h('span', { translate: 'no' }, term.name)] : ''),
      ),
      h('span', { class: 'alert-state', 'data-alert-state': alert.state }, tr('alertState', alert.state)),
      alert.escalated ? h('span', { class: 'escalated' }, t('alerts.escalated')) : null,
    ),
    compact ? null : h('p', { class: 'alert-title' }, title),
    detail ? h('p', { class: 'muted alert-detail' }, detail) : null,
    h(
      'dl',
      { class: 'facts' },
      value != null ? fact(t('alerts.value'), value, threshold != null ? ` (${t('alerts.threshold')} ${threshold})` : '') : null,
      fact(t('alerts.opened'), h('time', { datetime: alert.opened_at }, ctx.fmt.dateTime(alert.opened_at)), ' · ', isActive(alert) ? t('alerts.openFor', { d: duration(openFor) }) : t('alerts.lasted', { d: duration(openFor) })),
      alert.acknowledged_at ? fact(t('alerts.acknowledged'), ctx.fmt.dateTime(alert.acknowledged_at), alert.acknowledged_by ? [' · ', h('span', { translate: 'no' }, alert.acknowledged_by)] : '') : null,
      alert.assignee ? fact(t('alerts.assignee'), h('span', { translate: 'no' }, alert.assignee)) : null,
      wo
        ? fact(
            t('alerts.workOrder'),
            h('span', { translate: 'no' }, wo.crew || ''),
            wo.dispatched_at ? ` · ${t('alerts.dispatchedAt', { at: ctx.fmt.time(wo.dispatched_at) })}` : '',
            wo.arrived_at ? ` · ${t('alerts.arrivedAt', { at: ctx.fmt.time(wo.arrived_at) })}` : '',
            wo.resolved_at ? ` · ${t('alerts.resolvedAt', { at: ctx.fmt.time(wo.resolved_at) })}` : '',
            targets
              ? h('span', { class: 'targets' }, ['dispatch', 'arrive', 'resolve'].filter((k) => targets[k] != null).map((k) => h('span', { class: targets[k] ? 'met' : 'missed' }, `${t(`target.${k}`)} ${targets[k] ? '✓' : '✗'}`)))
              : null,
          )
        : null,
      alert.resolved_at
        ? fact(
            t('alerts.resolved'),
            ctx.fmt.dateTime(alert.resolved_at),
            alert.resolved_by ? [' · ', h('span', { translate: 'no' }, alert.resolved_by)] : '',
            alert.resolution_note ? h('q', { translate: alert.resolved_by === 'weir' ? null : 'no' }, resolutionText(alert, words)) : null,
          )
        : null,
    ),
    actions.length ? h('div', { class: 'actions', role: 'group', 'aria-label': t('alerts.actions') }, actions) : null,
    formBox,
    error,
    details,
  );
  return card;
}

function incidentBlock(incident, cards) {
  return h(
    'section',
    { class: 'incident', 'data-incident-id': incident.id, 'aria-labelledby': `inc-${incident.id}` },
    h(
      'header',
      null,
      h('h3', { id: `inc-${incident.id}` }, t('incident.label'), ' · ', incidentTitle(incident, { lang: language() })),
      h('p', { class: 'muted' }, t('incident.summary', { n: (incident.terminals || []).length, at: ctx.fmt.dateTime(incident.opened_at) }), ' ', (incident.terminals || []).join(', ')),
    ),
    cards,
  );
}

export function alertsView(main, { query }) {
  let tab = query.get('tab') === 'resolved' ? 'resolved' : 'active';
  let severity = SEVERITIES.includes(query.get('severity')) ? query.get('severity') : '';
  let text = query.get('q') || '';
  let resolved = null;
  const list = h('div', { class: 'alert-list', 'aria-live': 'off' });
  const pending = h('button', { type: 'button', class: 'notice-button', hidden: true, onClick: () => draw() });
  let newCount = 0;

  const matches = (a) =>
    (!severity || a.severity === severity) &&
    (!text || `${a.terminal} ${store.terminals.get(a.terminal)?.name || ''} ${store.terminals.get(a.terminal)?.village || ''}`.toLowerCase().includes(text.toLowerCase()));

  function draw() {
    // Histories the user opened stay open when the list is drawn again.
    const opened = new Set([...list.querySelectorAll('.alert-card')].filter((c) => c.querySelector('details.history')?.open).map((c) => c.dataset.alertId));
    const card = (a) => alertCard(a, { openHistory: opened.has(String(a.id)) });
    newCount = 0;
    pending.hidden = true;
    if (!store.alertsAvailable) {
      mount(list, h('p', { class: 'notice' }, t('alerts.unavailable')));
      return;
    }
    if (tab === 'resolved') {
      if (!resolved) {
        mount(list, h('p', { class: 'muted' }, t('common.loading')));
        api
          .alerts({ state: 'resolved', limit: 200 })
          .then((r) => {
            resolved = r;
            draw();
          })
          .catch((e) => mount(list, h('p', { class: 'error' }, t('error.generic', { detail: e.message }))));
        return;
      }
      const items = resolved.filter(matches);
      mount(list, items.length ? items.map(card) : h('p', { class: 'muted' }, t('alerts.noneResolved')));
      return;
    }
    const items = activeAlerts().filter(matches).sort(compareAlerts);
    if (!items.length) {
      mount(list, h('p', { class: 'empty' }, t('alerts.noneActive')));
      return;
    }
    const groups = groupByIncident(items, [...store.incidents.values()]);
    mount(list, groups.map((g) => (g.incident ? incidentBlock(g.incident, g.alerts.map(card)) : card(g.alerts[0]))));
  }

  function busy() {
    return list.contains(document.activeElement) || list.querySelector('.action-form form');
  }

  const tabs = h(
    'div',
    { class: 'tabs', role: 'group', 'aria-label': t('alerts.which') },
    ['active', 'resolved'].map((k) =>
      h('button', { type: 'button', 'aria-pressed': String(tab === k), 'data-tab': k, onClick: (e) => {
        tab = k;
        tabs.querySelectorAll('button').forEach((b) => b.setAttribute('aria-pressed', String(b === e.currentTarget)));
        sync();
        draw();
      } }, t(`alerts.tab.${k}`)),
    ),
  );

  function sync() {
    const q = new URLSearchParams();
    if (tab !== 'active') q.set('tab', tab);
    if (severity) q.set('severity', severity);
    if (text) q.set('q', text);
    history.replaceState(null, '', `/alerts${q.toString() ? `?${q}` : ''}`);
  }

  mount(
    main,
    h('div', { class: 'page-head' }, h('h1', null, t('page.alerts')), tabs),
    h(
      'form',
      { class: 'filters', role: 'search', onSubmit: (e) => e.preventDefault() },
      h('label', { for: 'f-sev' }, t('alerts.severity')),
      h('select', { id: 'f-sev', onChange: (e) => ((severity = e.target.value), sync(), draw()) },
        h('option', { value: '' }, t('alerts.anySeverity')),
        SEVERITIES.map((s) => h('option', { value: s, selected: s === severity }, tr('severity', s))),
      ),
      h('label', { for: 'f-text' }, t('alerts.search')),
      h('input', { id: 'f-text', type: 'search', value: text, placeholder: t('alerts.searchHint'), onInput: (e) => ((text = e.target.value), sync(), draw()) }),
    ),
    store.me?.role === 'inspector' ? h('p', { class: 'muted' }, t('alerts.readOnly')) : null,
    pending,
    list,
  );
  draw();

  const offs = [
    subscribe('alerts', () => {
      resolved = null;
      if (!busy()) draw();
    }),
    subscribe('incident', () => {
      if (!busy()) draw();
    }),
    subscribe('alert', ({ alert, previous }) => {
      if (tab !== 'active') {
        // A resolved alert that changed elsewhere: its card is redrawn in place.
        const i = resolved?.findIndex((a) => a.id === alert.id) ?? -1;
        if (i < 0 || isActive(alert)) return;
        resolved[i] = alert;
        const old = list.querySelector(`[data-alert-id="${CSS.escape(String(alert.id))}"]`);
        if (!old) return;
        const hadFocus = old.contains(document.activeElement);
        const next = alertCard(alert, { openHistory: Boolean(old.querySelector('details.history')?.open) });
        old.replaceWith(next);
        if (hadFocus) next.focus();
        return;
      }
      const old = list.querySelector(`[data-alert-id="${CSS.escape(String(alert.id))}"]`);
      const regroup = previous && previous.incident_id !== alert.incident_id;
      if (old && !regroup) {
        const hadFocus = old.contains(document.activeElement);
        const next = isActive(alert) ? alertCard(alert, { openHistory: Boolean(old.querySelector('details.history')?.open) }) : h('p', { class: 'muted gone' }, t('alerts.nowResolved', { terminal: alert.terminal, rule: tr('rule', alert.rule) }));
        old.replaceWith(next);
        if (hadFocus && next.focus) next.focus();
        return;
      }
      if (busy()) {
        newCount++;
        pending.textContent = t('alerts.newWaiting', { n: newCount });
        pending.hidden = false;
      } else {
        draw();
      }
    }),
  ];
  return () => offs.forEach((off) => off());
}
