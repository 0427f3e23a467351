import assert from 'node:assert/strict';
import { appendFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { LocalLog, LocalLogSource } from '../../src/source/local-log.ts';
import type { RecordBatch } from '../../src/source/source.ts';
import { tempDir } from '../support/tmp.ts';

const ev = (i: number) => JSON.stringify({ type: 'track', event: 'E', anonymousId: `a${i % 5}`, messageId: `m${i}`, receivedAt: '2026-11-22T10:00:00Z' });

async function readAll(source: LocalLogSource): Promise<string[]> {
  const out: string[] = [];
  for await (const b of source as AsyncIterable<RecordBatch>) {
    const text = Buffer.from(b.ndjson!.bytes).toString('utf8');
    const lines = text.split('\n').slice(0, -1);
    assert.equal(lines.length, b.ndjson!.lines);
    lines.forEach((l, i) => out.push(`${b.ndjson!.firstPosition + BigInt(i)}:${l}`));
  }
  return out;
}

test('appends get consecutive positions across segments; concurrent appends are grouped; a torn tail is cut on open', async () => {
  const dir = tempDir('log');
  const log = await LocalLog.open(dir, { segmentBytes: 2048 });
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => log.append([ev(2 * i), ev(2 * i + 1)])));
  for (let i = 10; i < 50; i++) results.push(await log.append([ev(2 * i), ev(2 * i + 1)]));
  const positions = results.flatMap((r) => [r.first, r.last]).sort((a, b) => (a < b ? -1 : 1));
  assert.equal(positions[0], 1n);
  assert.equal(positions.at(-1), 100n);
  for (const r of results) assert.equal(r.last, r.first + 1n);
  await log.close();
  assert.ok(readdirSync(dir).filter((n) => n.startsWith('seg-')).length > 3, 'several segments');
  const lines = await readAll(new LocalLogSource(dir, { follow: false }));
  assert.equal(lines.length, 100);
  assert.deepEqual(lines.map((l) => l.split(':')[0]), Array.from({ length: 100 }, (_, i) => String(i + 1)));
  // A crash mid-write leaves half a line: it was never acknowledged, and it goes.
  const last = readdirSync(dir).filter((n) => n.startsWith('seg-')).sort().at(-1)!;
  appendFileSync(`${dir}/${last}`, '{"type":"tra');
  const reopened = await LocalLog.open(dir, { segmentBytes: 2048 });
  assert.equal(reopened.nextPosition, 101n);
  assert.deepEqual(await reopened.append([ev(100)]), { first: 101n, last: 101n });
  await reopened.close();
  assert.equal((await readAll(new LocalLogSource(dir, { follow: false }))).length, 101);
  await assert.rejects(reopened.append([ev(1)]), /closed/);
});

test('the pipeline follows the log, checkpoints after commits, resumes after the checkpoint, and prunes old segments', async () => {
  const dir = tempDir('logpipe');
  const lake = `${dir}/lake`;
  const logDir = `${lake}/_tributary/log`;
  const log = await LocalLog.open(logDir, { segmentBytes: 4096, retentionMs: 0 });
  const { storage, catalog } = openLocalLake(lake);
  const ac = new AbortController();
  const source = new LocalLogSource(logDir, { log, signal: ac.signal });
  const run = new Ingestor(storage, catalog, { signal: ac.signal, maxFileAgeMs: 200, decodeWorkers: 0 }).run(source);
  for (let i = 0; i < 200; i += 20) {
    await log.append(Array.from({ length: 20 }, (_, k) => ev(i + k)));
    await new Promise((r) => setTimeout(r, 30));
  }
  await new Promise((r) => setTimeout(r, 800));
  ac.abort();
  const stats = await run;
  assert.equal(stats.written, 200);
  assert.equal(await source.savedCheckpoint(), 200n);
  assert.ok(readdirSync(logDir).filter((n) => n.startsWith('seg-')).length <= 2, 'committed segments pruned');
  // More records, a new consumer: it starts after the checkpoint and adds exactly those.
  await log.append([ev(200), ev(201)]);
  await log.close();
  const s2 = await new Ingestor(storage, catalog, { decodeWorkers: 0 }).run(new LocalLogSource(logDir, { follow: false }));
  assert.deepEqual([s2.read, s2.written], [2, 2]);
  const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
  const { rows } = await q.query('SELECT count(*), count(DISTINCT message_id) FROM tracks');
  q.close();
  assert.deepEqual(rows[0], [202, 202]);
});
