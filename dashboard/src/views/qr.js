// QR codes as SVG, drawn from the generator's module matrix (no HTML strings).

import qrcode from 'qrcode-generator';
import { s } from '../dom.js';

/** An SVG QR code for `text`, error correction M (survives a scuffed cabinet label). */
export function qrSvg(text, { title } = {}) {
  const qr = qrcode(0, 'M');
  qr.addData(text, 'Byte');
  qr.make();
  const n = qr.getModuleCount();
  const quiet = 4;
  const size = n + 2 * quiet;
  let d = '';
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.isDark(r, c)) d += `M${c + quiet} ${r + quiet}h1v1h-1z`;
    }
  }
  return s(
    'svg',
    { viewBox: `0 0 ${size} ${size}`, class: 'qr', role: 'img', 'aria-label': title || text, 'data-text': text, 'shape-rendering': 'crispEdges' },
    s('title', null, title || text),
    s('rect', { width: size, height: size, fill: '#fff' }),
    s('path', { d, fill: '#000' }),
  );
}
