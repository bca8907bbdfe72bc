// Builds the explorer into node/assets/explorer/, which the node compiles
// into its binary: index.html, explorer.js (explorer/src/main.ts bundled
// and minified with the client library) and explorer.css.
//
//   node explorer/build.mjs            type-check, bundle, write the assets
//   node explorer/build.mjs --check    rebuild into a temporary folder and
//                                      exit 1 if the committed assets differ
//   --no-typecheck                     skip the type check (bundle only)

import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, copyFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, '..');
const repo = resolve(pkg, '../..');
const assets = join(repo, 'node', 'assets', 'explorer');
/** Exactly the files the node serves. */
const FILES = ['index.html', 'explorer.js', 'explorer.css'];
/** The bundle stays small: the node carries it in its binary. */
const BUNDLE_BYTES_MAX = 200 * 1024;

const args = process.argv.slice(2);
for (const a of args) {
  if (!['--check', '--no-typecheck'].includes(a)) {
    console.error(`build.mjs: unknown argument ${a} (use --check and/or --no-typecheck)`);
    process.exit(2);
  }
}
const check = args.includes('--check');

function fail(msg) {
  console.error(`build.mjs: ${msg}`);
  process.exit(1);
}

if (!existsSync(join(pkg, 'src', 'index.ts'))) {
  fail('clients/typescript/src/index.ts is missing: the explorer bundles the client library from it');
}

if (!args.includes('--no-typecheck')) {
  const tsc = join(pkg, 'node_modules', 'typescript', 'lib', 'tsc.js');
  if (!existsSync(tsc)) fail('typescript is not installed: run `npm ci` in clients/typescript');
  const r = spawnSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.json')], { stdio: 'inherit' });
  if (r.status !== 0) fail('the explorer does not type-check (see above)');
}

async function buildInto(dir) {
  mkdirSync(dir, { recursive: true });
  const res = await build({
    entryPoints: [join(here, 'src', 'main.ts')],
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: ['es2020'],
    sourcemap: false,
    legalComments: 'none',
    charset: 'utf8',
    write: false,
    logLevel: 'warning',
    outfile: join(dir, 'explorer.js'),
  });
  const js = res.outputFiles[0];
  if (!js) fail('esbuild wrote no output');
  if (js.contents.length > BUNDLE_BYTES_MAX) {
    fail(`explorer.js is ${js.contents.length} bytes, more than the ${BUNDLE_BYTES_MAX} allowed`);
  }
  writeFileSync(join(dir, 'explorer.js'), js.contents);
  copyFileSync(join(here, 'index.html'), join(dir, 'index.html'));
  copyFileSync(join(here, 'style.css'), join(dir, 'explorer.css'));
}

if (check) {
  const tmp = mkdtempSync(join(tmpdir(), 'tally-explorer-'));
  try {
    await buildInto(tmp);
    const problems = [];
    for (const f of FILES) {
      const committed = join(assets, f);
      if (!existsSync(committed)) problems.push(`${f} is missing`);
      else if (!readFileSync(committed).equals(readFileSync(join(tmp, f)))) problems.push(`${f} differs from a fresh build`);
    }
    const extra = existsSync(assets) ? readdirSync(assets).filter((f) => !FILES.includes(f)) : [];
    for (const f of extra) problems.push(`${f} should not be there (the node serves only ${FILES.join(', ')})`);
    if (problems.length > 0) {
      fail(
        `${relative(repo, assets)} is out of date:\n  ${problems.join('\n  ')}\n` +
          'Run `npm run build:explorer` in clients/typescript and commit node/assets/explorer.',
      );
    }
    console.log(`${relative(repo, assets)} is up to date`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else {
  await buildInto(assets);
  const size = readFileSync(join(assets, 'explorer.js')).length;
  console.log(`wrote ${relative(repo, assets)}: ${FILES.join(', ')} (explorer.js ${size} bytes)`);
}
