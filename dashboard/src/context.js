// What every view needs from the shell, set by main.js.

import { makeFormat } from './format.js';

export const ctx = {
  /** Formatters for the current language in the site's time zone. */
  fmt: makeFormat('en', 'Asia/Shanghai'),
  /** Moves to a path inside the app. */
  navigate: (path) => {
    location.assign(path);
  },
};
