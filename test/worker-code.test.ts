import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { workerUrl } from '../src/worker-code.ts';

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
