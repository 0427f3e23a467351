#!/usr/bin/env node
// Runs the TypeScript CLI without a build step. The sources are bundled once by esbuild into
// node_modules/.cache/tributary/<hash of src/>/ and the bundle is loaded from then on: compiling
// every module through tsx on each start cost ~1 s and ~1.6 CPU-s (measured: `tributary --help`
// 1.3 s through tsx, 0.57 s from the bundle, most of it loading the AWS SDK and DuckDB). A source
// change makes a new bundle; where none can be made (a read-only install, no esbuild), tsx compiles
// on load as before. The bundle is split: each command is a chunk loaded when it runs (see
// src/cli/main.ts), so a command loads only the packages it uses.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// A closed pipe (`tributary query ... | head`) is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

/** Bumped when the bundle's build options change, so older bundles are not reused. */
const BUNDLE_FORMAT = 3;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Worker thread entries, bundled beside the CLI (src/worker-code.ts uses them instead of bundling at each start). */
const WORKERS = { 'decode-worker': 'src/ingest/decode-worker.ts', 'sort-worker': 'src/writer/sort-worker.ts' };

/** A hash of every file's path, size and modification time under src/: the bundle's identity. */
function sourceKey() {
  const h = createHash('sha256').update(`format ${BUNDLE_FORMAT} node ${process.versions.node}\n`);
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const st = statSync(p);
        h.update(`${path.relative(ROOT, p)} ${st.size} ${st.mtimeMs}\n`);
      }
    }
  };
  walk(path.join(ROOT, 'src'));
  return h.digest('hex').slice(0, 16);
}

/** The bundle's directory, built when missing: `env.mjs` (DuckDB's allocator settings), `cli.mjs` and the worker entries. */
async function bundleDir() {
  const cache = path.join(ROOT, 'node_modules', '.cache', 'tributary');
  const dir = path.join(cache, sourceKey());
  if (existsSync(path.join(dir, 'cli.mjs'))) return dir;
  const { build } = await import('esbuild');
  const tmp = `${dir}.tmp-${process.pid}`;
  await build({
    // The allocator settings are a bundle of their own, loaded first: in one bundle, the imports of
    // packages run before any bundled code, so DuckDB would load before its settings are made.
    entryPoints: {
      cli: path.join(ROOT, 'src/cli/main.ts'),
      env: path.join(ROOT, 'src/writer/allocator-env.ts'),
      ...Object.fromEntries(Object.entries(WORKERS).map(([name, src]) => [name, path.join(ROOT, src)])),
    },
    outdir: tmp,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    // Shared code in chunks, each command in its own (loaded by main.ts when run): a command loads
    // only the packages it uses; `query` on a local lake no longer loads the AWS SDK.
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    logLevel: 'silent',
    plugins: [
      {
        // Modules find files beside them (worker entries, views) through import.meta.url: each keeps its own source location.
        name: 'source-import-meta-url',
        setup(b) {
          b.onLoad({ filter: /\.ts$/ }, (args) => ({
            contents: readFileSync(args.path, 'utf8').replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
            loader: 'ts',
          }));
        },
      },
    ],
  });
  mkdirSync(cache, { recursive: true });
  try {
    renameSync(tmp, dir); // atomic: a process starting beside this one sees the whole bundle or none
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another process made it first
  }
  // Bundles of earlier sources are removed once a day old (~0.5 MB each), and builds left half done
  // by a process that died once 10 minutes old. Not at once: a process running an older bundle
  // still loads its command's chunks from it (measured: two checkouts sharing node_modules, one
  // rebuilding, made the other's CLI runs fail now and then).
  for (const old of readdirSync(cache)) {
    const p = path.join(cache, old);
    const age = Date.now() - statSync(p).mtimeMs;
    const stale = old.includes('.tmp-') ? age > 600_000 : age > 86_400_000;
    if (old !== path.basename(dir) && stale) rmSync(p, { recursive: true, force: true });
  }
  return dir;
}

async function loadCli() {
  let dir;
  try {
    dir = await bundleDir();
  } catch {
    const { register } = await import('tsx/esm/api');
    register();
    return import('../src/cli/main.ts');
  }
  await import(pathToFileURL(path.join(dir, 'env.mjs')).href);
  // Bundling a worker entry at run time blocked the main thread ~0.15 s per process (measured).
  globalThis[Symbol.for('tributary.workerBundles')] = Object.fromEntries(
    Object.entries(WORKERS).map(([name, src]) => [pathToFileURL(path.join(ROOT, src)).href, pathToFileURL(path.join(dir, `${name}.mjs`)).href]),
  );
  return import(pathToFileURL(path.join(dir, 'cli.mjs')).href);
}

const { main } = await loadCli();
process.exitCode = await main(process.argv.slice(2));
