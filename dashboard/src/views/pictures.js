// Pictures of the whole terminal: the newest large, the ones before it small, and for field
// staff and operators a button that takes a photo with the phone's camera and uploads it. The
// pictures around an alert (the last before it opened, the first after) for its card.

import { api } from '../api.js';
import { ctx } from '../context.js';
import { h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { can } from '../state.js';
import { store } from '../store.js';

/** One picture as a linked thumbnail with its time and source. */
export function pictureFigure(p, { large = false, caption = null } = {}) {
  const who = p.source === 'camera' ? t('pictures.camera') : t('pictures.uploadedBy', { who: p.uploaded_by || '—' });
  return h(
    'figure',
    { class: ['picture', large ? 'picture-large' : ''], 'data-picture-id': p.id, 'data-source': p.source },
    h(
      'a',
      { href: p.url, target: '_blank', rel: 'noopener' },
      h('img', { src: p.thumbnail_url, alt: t('pictures.alt', { terminal: p.terminal, at: ctx.fmt.dateTime(p.taken_at) }), loading: 'lazy', width: 320 }),
    ),
    h(
      'figcaption',
      { class: 'small' },
      caption ? [h('strong', null, caption), ' '] : null,
      h('time', { datetime: p.taken_at }, ctx.fmt.dateTime(p.taken_at)),
      ' · ',
      h('span', { translate: p.source === 'camera' ? null : 'no' }, who),
    ),
  );
}

/** The terminal page's card; returns it and a function that loads it again. */
export function picturesCard(id) {
  const box = h('div', { class: 'pictures', 'aria-busy': 'true' });
  const note = h('p', { class: 'small', role: 'status' });
  let seq = 0;

  async function load() {
    const mine = ++seq;
    box.setAttribute('aria-busy', 'true');
    try {
      const list = await api.pictures(id, 9);
      if (mine !== seq) return;
      if (!list.length) {
        mount(box, h('p', { class: 'muted' }, t('pictures.none')));
      } else {
        const [newest, ...older] = list;
        mount(
          box,
          pictureFigure(newest, { large: true }),
          older.length ? h('div', { class: 'picture-strip' }, older.map((p) => pictureFigure(p))) : null,
        );
      }
      box.dataset.count = String(list.length);
    } catch (e) {
      if (mine !== seq) return;
      mount(box, h('p', { class: 'error' }, t('error.generic', { detail: e.message })));
    } finally {
      if (mine === seq) box.setAttribute('aria-busy', 'false');
    }
  }

  let upload = null;
  if (can(store.me?.role, 'uploadPicture')) {
    const input = h('input', {
      id: 'picture-file',
      type: 'file',
      // JPEG and PNG only: a phone then hands over a JPEG even when it keeps HEIC itself.
      accept: 'image/jpeg,image/png',
      class: 'visually-hidden',
      onChange: async () => {
        const file = input.files?.[0];
        if (!file) return;
        note.className = 'small';
        note.textContent = t('pictures.uploading', { kb: Math.round(file.size / 1024) });
        label.setAttribute('aria-disabled', 'true');
        try {
          await api.uploadPicture(id, file);
          note.textContent = t('pictures.uploaded');
          await load();
        } catch (e) {
          note.className = 'small error';
          note.textContent = t('pictures.refused', { detail: e.message });
        } finally {
          input.value = '';
          label.removeAttribute('aria-disabled');
        }
      },
    });
    const label = h('label', { for: 'picture-file', class: 'button-link', 'data-action': 'upload-picture', tabindex: '0', role: 'button', onKeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } } }, t('pictures.upload'));
    upload = h('div', { class: 'picture-upload no-print' }, input, label, h('span', { class: 'muted small' }, t('pictures.uploadHint', { mb: Math.floor((store.site.max_picture_bytes || 10485760) / 1048576) })));
  }

  const card = h(
    'section',
    { class: 'card', 'aria-labelledby': 'pictures-title' },
    h('h2', { id: 'pictures-title' }, t('pictures.title')),
    box,
    upload,
    note,
  );
  load();
  return { card, load };
}

/** The pictures around an alert, from `GET /alerts/{id}`'s `pictures`. */
export function picturesAround(pictures) {
  const { before, after } = pictures || {};
  if (!before && !after) return h('p', { class: 'muted small alert-pictures', 'data-empty': 'true' }, t('pictures.noneAround'));
  return h(
    'div',
    { class: 'alert-pictures picture-strip' },
    before ? pictureFigure(before, { caption: t('pictures.before') }) : null,
    after ? pictureFigure(after, { caption: t('pictures.after') }) : h('p', { class: 'muted small' }, t('pictures.noneAfter')),
  );
}
