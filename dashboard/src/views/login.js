// The login form.

import { api } from '../api.js';
import { h, mount } from '../dom.js';
import { LANGUAGES, language, t } from '../i18n.js';
import { store } from '../store.js';

export function loginView(main, { onLogin, onLanguage }) {
  const error = h('p', { class: 'error', role: 'alert', id: 'login-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, t('login.submit'));
  const form = h(
    'form',
    {
      class: 'card login',
      'aria-labelledby': 'login-title',
      onSubmit: async (e) => {
        e.preventDefault();
        error.hidden = true;
        submit.disabled = true;
        const data = new FormData(form);
        try {
          const me = await api.login(String(data.get('username')).trim(), String(data.get('password')));
          await onLogin(me);
        } catch (err) {
          error.textContent = err.status === 401 ? t('login.wrong') : t('error.generic', { detail: err.message });
          error.hidden = false;
          submit.disabled = false;
          form.querySelector('#password').select();
        }
      },
    },
    h('h1', { id: 'login-title' }, store.site.name && store.site.name !== 'Weir' ? store.site.name : t('login.title')),
    h('p', { class: 'muted' }, t('login.intro')),
    h('label', { for: 'username' }, t('login.username')),
    h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' }),
    h('label', { for: 'password' }, t('login.password')),
    h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    error,
    submit,
    h(
      'div',
      { class: 'lang-choice', role: 'group', 'aria-label': t('lang.switch') },
      LANGUAGES.map((l) =>
        h(
          'button',
          { type: 'button', class: 'ghost', lang: l, 'aria-pressed': String(l === language()), onClick: () => onLanguage(l) },
          t(`lang.name.${l}`),
        ),
      ),
    ),
  );
  mount(main, form);
  form.querySelector('#username').focus();
  return null;
}
