// UI strings: one dictionary per language in locales/, chosen from the browser or the toggle.

import en from './locales/en.json' with { type: 'json' };
import zh from './locales/zh-CN.json' with { type: 'json' };

export const DICTIONARIES = { en, 'zh-CN': zh };
export const LANGUAGES = Object.keys(DICTIONARIES);

/** The language to use: the saved choice, else the first browser language we have
 * (any Chinese variant gets zh-CN), else English. */
export function pickLanguage(browserLanguages = [], saved = null) {
  if (saved && DICTIONARIES[saved]) return saved;
  for (const l of browserLanguages) {
    const tag = String(l).toLowerCase();
    if (tag.startsWith('zh')) return 'zh-CN';
    if (tag.startsWith('en')) return 'en';
  }
  return 'en';
}

let current = 'en';

export function setLanguage(lang) {
  if (!DICTIONARIES[lang]) throw new Error(`no dictionary for ${lang}`);
  current = lang;
}

export function language() {
  return current;
}

/** The string for `key` in `lang`, with `{name}` placeholders filled from `params`.
 * A missing key shows itself, so it is seen and fixed rather than silently blank. */
export function translate(lang, key, params) {
  const s = DICTIONARIES[lang]?.[key] ?? DICTIONARIES.en[key] ?? key;
  if (!params) return s;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** The string for `key` in the current language. */
export function t(key, params) {
  return translate(current, key, params);
}

/** Placeholders used by a string, to check both languages fill the same ones. */
export function placeholders(s) {
  return [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
}
