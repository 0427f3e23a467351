import { buildSync } from 'esbuild';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The URL a worker thread runs `entry` (a TypeScript module) from: the module bundled once per
 * process with esbuild into one ES module, as a data: URL. Worker threads do not inherit tsx's
 * loader, and loading a worker's modules through it (the `bootstrap` .mjs) cost ~0.2 s and
 * ~0.35 CPU-s per worker, measured; the bundle loads in a fraction of that. Worker entries import
 * only Node built-ins and project modules. Should bundling fail, the worker falls back to `bootstrap`.
 * A bundle made ahead (the CLI's, registered by bin/tributary.js) is used when there is one.
 */
export function workerUrl(entry: URL, bootstrap: URL): URL {
  let url = bundles.get(entry.href);
  if (url === undefined) {
    url = prebuilt(entry) ?? bundle(entry) ?? bootstrap;
    bundles.set(entry.href, url);
  }
  return url;
}

const bundles = new Map<string, URL>();
/** Where bin/tributary.js registers the worker bundles it made: entry href → bundle file URL. */
const PREBUILT = Symbol.for('tributary.workerBundles');

/** The bundle of `entry` made ahead, if one was registered and is there. */
function prebuilt(entry: URL): URL | null {
  const href = (globalThis as { [PREBUILT]?: Record<string, string> })[PREBUILT]?.[entry.href];
  return href !== undefined && existsSync(fileURLToPath(href)) ? new URL(href) : null;
}

/** `entry` bundled now, as a data: URL; null if esbuild cannot. */
function bundle(entry: URL): URL | null {
  try {
    const out = buildSync({ entryPoints: [fileURLToPath(entry)], bundle: true, format: 'esm', platform: 'node', target: 'node20', write: false, packages: 'external', logLevel: 'silent' });
    return new URL(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0]!.contents).toString('base64')}`);
  } catch {
    return null;
  }
}
