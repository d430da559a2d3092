// Builds the dashboard into $WEIR_DASHBOARD_OUT (default dist/): index.html and hashed assets,
// every byte bundled (no CDN), for the gateway to embed.

import { build } from 'esbuild';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, process.env.WEIR_DASHBOARD_OUT || 'dist');
const started = performance.now();

// Only what this script writes is removed: the output directory may be shared.
await rm(path.join(out, 'assets'), { recursive: true, force: true });
await rm(path.join(out, 'index.html'), { force: true });
await mkdir(out, { recursive: true });

const result = await build({
  entryPoints: [path.join(here, 'src/main.js')],
  bundle: true,
  format: 'esm',
  target: ['chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: false,
  legalComments: 'linked',
  outdir: path.join(out, 'assets'),
  entryNames: 'app-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((f) => path.relative(out, path.resolve(f)).split(path.sep).join('/'));
const js = outputs.find((f) => f.endsWith('.js'));
const css = outputs.find((f) => f.endsWith('.css'));
if (!js || !css) throw new Error(`the build made no ${js ? 'CSS' : 'JavaScript'} bundle: ${outputs.join(', ')}`);
const html = (await readFile(path.join(here, 'src/index.html'), 'utf8')).replace('%JS%', js).replace('%CSS%', css);
await writeFile(path.join(out, 'index.html'), html);

const sizes = Object.entries(result.metafile.outputs).map(([f, o]) => `${path.basename(f)} ${(o.bytes / 1024).toFixed(1)} KiB`);
console.log(`dashboard built into ${out} in ${Math.round(performance.now() - started)} ms: ${sizes.join(', ')}`);
