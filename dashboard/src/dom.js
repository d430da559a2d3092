// A small element builder: text always goes in as text, never as HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** `h('button', {class: 'x', onClick}, 'Text')`. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  build(el, null, children);
  return el;
}

let liveRegion;
/** How many toasts are on screen at once; a burst beyond that folds into one summary. */
export const MAX_TOASTS = 3;
const TOAST_MS = 8000;
let folded = 0;
let foldedTimer = null;

/** Says `text` to screen readers and shows it briefly as a toast. When a burst of messages
 * (a replay, an incident across many terminals) would stack more than MAX_TOASTS, the oldest
 * gives way and one summary, `more(n)`, counts what was folded, so the stack never grows
 * over the controls. Toasts let clicks through to what is under them. */
export function announce(text, kind = 'info', more = null) {
  liveRegion ??= document.getElementById('announcer');
  if (liveRegion) liveRegion.textContent = text;
  const box = document.getElementById('toasts');
  if (!box) return;
  const toast = h('div', { class: ['toast', `toast-${kind}`] }, text);
  box.append(toast);
  setTimeout(() => toast.remove(), TOAST_MS);
  const shown = [...box.querySelectorAll('.toast:not(.toast-more)')];
  const over = shown.length - (more ? MAX_TOASTS - 1 : MAX_TOASTS);
  if (over <= 0) return;
  for (const old of shown.slice(0, over)) old.remove();
  if (!more) return;
  folded += over;
  let summary = box.querySelector('.toast-more');
  if (!summary) {
    summary = h('div', { class: ['toast', 'toast-more'] });
    box.prepend(summary);
  }
  summary.textContent = more(folded);
  clearTimeout(foldedTimer);
  foldedTimer = setTimeout(() => {
    folded = 0;
    summary.remove();
  }, TOAST_MS);
}
