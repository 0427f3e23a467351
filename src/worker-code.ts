import { buildSync } from 'esbuild';
import { fileURLToPath } from 'node:url';

/**
 * The URL a worker thread runs `entry` (a TypeScript module) from: the module bundled once per
 * process with esbuild into one ES module, as a data: URL. Worker threads do not inherit tsx's
 * loader, and loading a worker's modules through it (the `bootstrap` .mjs) cost ~0.2 s and
 * ~0.35 CPU-s per worker, measured; the bundle loads in a fraction of that. Worker entries import
 * only Node built-ins and project modules. Should bundling fail, the worker falls back to `bootstrap`.
 */
export function workerUrl(entry: URL, bootstrap: URL): URL {
  let url = bundles.get(entry.href);
  if (url === undefined) {
    try {
      const out = buildSync({ entryPoints: [fileURLToPath(entry)], bundle: true, format: 'esm', platform: 'node', target: 'node20', write: false, packages: 'external', logLevel: 'silent' });
      url = new URL(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0]!.contents).toString('base64')}`);
    } catch {
      url = bootstrap;
    }
    bundles.set(entry.href, url);
  }
  return url;
}

const bundles = new Map<string, URL>();
