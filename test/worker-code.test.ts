import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { workerUrl } from '../src/worker-code.ts';
import { ROOT, runCli, tempDir } from './support/tmp.ts';

test('workerUrl bundles a TypeScript worker entry into one module a worker thread runs, once per process', async () => {
  const entry = new URL('../src/writer/sort-worker.ts', import.meta.url);
  const bootstrap = new URL('../src/writer/sort-worker.mjs', import.meta.url);
  const url = workerUrl(entry, bootstrap);
  assert.equal(url.protocol, 'data:');
  assert.equal(workerUrl(entry, bootstrap), url, 'bundled once, then reused');
  // The bundle runs: the sort worker answers a job that cannot be done with an error naming it.
  const w = new Worker(url);
  try {
    const reply = await new Promise<{ error?: string }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
      w.postMessage({ job: { segments: [{ path: '/nonexistent/spool.ndjson', bytes: 10, inOrder: false }], indexPath: '/nonexistent/spool.idx', segmentOf: [], outPath: '/nonexistent/out.ndjson', rows: 1, events: [], memoryBytes: 1 << 20 } });
    });
    assert.match(reply.error ?? '', /nonexistent/);
  } finally {
    await w.terminate();
  }
  // An entry esbuild cannot bundle falls back to the bootstrap module.
  const missing = new URL('../src/writer/no-such-worker.ts', import.meta.url);
  assert.equal(workerUrl(missing, bootstrap), bootstrap);
});

test('workerUrl runs a bundle made ahead (as bin/tributary.js registers its own) when it exists, and bundles at run time when it does not', async () => {
  const entry = new URL('../src/ingest/decode-worker.ts', import.meta.url);
  const other = new URL('../src/writer/no-such-prebuilt-worker.ts', import.meta.url);
  const dir = tempDir('prebuilt');
  const file = path.join(dir, 'decode-worker.mjs');
  writeFileSync(file, 'export {};\n');
  const registry = Symbol.for('tributary.workerBundles');
  const g = globalThis as { [registry]?: Record<string, string> };
  g[registry] = { [entry.href]: pathToFileURL(file).href, [other.href]: pathToFileURL(path.join(dir, 'gone.mjs')).href };
  try {
    assert.equal(workerUrl(entry, new URL('file:///bootstrap.mjs')).href, pathToFileURL(file).href);
    // Registered but missing (a bundle directory removed since): bundling is tried, then the bootstrap.
    assert.equal(workerUrl(other, new URL('file:///bootstrap.mjs')).href, 'file:///bootstrap.mjs');
  } finally {
    delete g[registry];
  }
});

test('the CLI bundle holds the worker entries beside cli.mjs, and an ingest through the CLI works with them', async () => {
  const dir = tempDir('cli-workers');
  writeFileSync(path.join(dir, 'e.ndjson'), JSON.stringify({ type: 'track', event: 'E', anonymousId: 'a', receivedAt: '2026-11-20T00:00:00Z' }) + '\n');
  const r = await runCli(['ingest', '--json', '--lake', path.join(dir, 'lake'), path.join(dir, 'e.ndjson')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).written, 1);
  const cache = path.join(ROOT, 'node_modules', '.cache', 'tributary');
  const bundles = readdirSync(cache).filter((d) => !d.includes('.tmp-'));
  assert.ok(bundles.some((d) => ['decode-worker.mjs', 'sort-worker.mjs', 'cli.mjs'].every((f) => existsSync(path.join(cache, d, f)))), `bundles: ${bundles.join(', ')}`);
});
