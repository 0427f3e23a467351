import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AthenaQuery } from '../../src/athena/athena-query.ts';
import { EmbeddedCatalog } from '../../src/catalog/embedded-catalog.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { runAthenaMerge, type AthenaRunner } from '../../src/compact/athena-merge.ts';
import { runMerge } from '../../src/compact/merge.ts';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import { AthenaEngine } from '../support/athena-engine.ts';
import { assertQuick, moreEvents, quickAnswers, s3LakeWithAthena } from '../support/athena-lake.ts';
import { startAthenaStandIn } from '../support/athena-standin.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { rerunWithOpenSslLegacyProviderIfNeeded } from '../support/s3rver.ts';

rerunWithOpenSslLegacyProviderIfNeeded(); // s3rver (in this process) needs DES for its listing tokens

test('swap semantics: files arriving during the Athena statements are carried over, a partition swapped meanwhile is skipped, a failed run changes nothing', async () => {
  const { dir, client, storage, catalog, input, standIn, engine } = await s3LakeWithAthena('athswap', 1500, 87, 4);
  const athena = new AthenaQuery({ client: standIn.client({ maxAttempts: 3 }), database: 'tributary', poll: { initialDelayMs: 5, maxDelayMs: 20 } });
  const late = moreEvents(dir, 'late', 600, 89); // new events, into the same days
  let meddled = false;
  const runner: AthenaRunner = {
    run: async (sql, o) => {
      if (!meddled && sql.startsWith('CREATE TABLE')) {
        meddled = true;
        // While Athena works: new files land in the partitions, and another compaction swaps one of them.
        await new Ingestor(storage, catalog, { targetFileBytes: 16 * 1024, decodeWorkers: 0 }).run(new FileSource(late.files));
        const r = await runMerge(storage, catalog, { table: 'tracks', graceMs: 3_600_000 });
        assert.ok(r.merged >= 1);
      }
      return athena.run(sql, o);
    },
  };
  const result = await runAthenaMerge(storage, catalog, runner, { database: 'tributary', table: 'tracks', graceMs: 3_600_000 });
  assert.ok(meddled);
  // Every tracks partition was swapped by the DuckDB merge first: the Athena swaps are refused by the version check.
  assert.equal(result.merged, 0);
  assert.deepEqual(result.skipped.map((s) => s.reason.replace(/\(version.*$/, '').trim()).sort(), result.plans.map(() => 'the partition moved since the plan').sort());
  assert.ok(result.plans.length >= 3);
  assertQuick(await quickAnswers(storage, catalog), await expectedAnswers([...input.lines, ...late.lines], dir));
  assert.equal(engine.tables.size, 0);
  assert.deepEqual(await storage.list('_tributary/athena', { recursive: true }), []);

  // New small files arrive after the plan (during the statements): carried into the new generation.
  const later = moreEvents(dir, 'later', 400, 91);
  let arrived = false;
  const arrivals: string[] = [];
  const committedNames = async () => {
    const out: string[] = [];
    for (const t of await catalog.listTables()) for (const f of await listCommittedFiles(storage, catalog, t.name)) out.push(`${t.name}/${f.key.slice(f.key.lastIndexOf('/') + 1)}`);
    return out;
  };
  const runner2: AthenaRunner = {
    run: async (sql, o) => {
      if (!arrived && sql.startsWith('CREATE TABLE')) {
        arrived = true;
        const had = new Set(await committedNames());
        await new Ingestor(storage, catalog, { targetFileBytes: 16 * 1024, decodeWorkers: 0 }).run(new FileSource(later.files));
        arrivals.push(...(await committedNames()).filter((n) => !had.has(n)));
      }
      return athena.run(sql, o);
    },
  };
  const r2 = await runAthenaMerge(storage, catalog, runner2, { database: 'tributary', smallFileBytes: 1 << 20, graceMs: 0 });
  assert.ok(arrived && r2.merged > 0, JSON.stringify(r2.skipped));
  assert.deepEqual(r2.skipped, []);
  assertQuick(await quickAnswers(storage, catalog), await expectedAnswers([...input.lines, ...late.lines, ...later.lines], dir));
  assert.ok(arrivals.length > 0);
  const now = new Set(await committedNames());
  assert.deepEqual(arrivals.filter((n) => !now.has(n)), [], 'every file that arrived during the statements is in the new generations');

  // A failed statement: nothing swapped, staging gone.
  const more = moreEvents(dir, 'more', 300, 93);
  await new Ingestor(storage, catalog, { targetFileBytes: 8 * 1024, decodeWorkers: 0 }).run(new FileSource(more.files));
  const afterIngest = JSON.stringify(await catalog.getPartitions('tracks'));
  const failing: AthenaRunner = { run: (sql, o) => (sql.startsWith('CREATE TABLE') ? athena.run(sql.replace(/bucket_count = \d+/, 'bucket_count = 0, nonsense = 1'), o) : athena.run(sql, o)) };
  await assert.rejects(runAthenaMerge(storage, catalog, failing, { database: 'tributary', table: 'tracks', graceMs: 0 }), /FAILED: INVALID_TABLE_PROPERTY/);
  assert.equal(JSON.stringify(await catalog.getPartitions('tracks')), afterIngest, 'no partition moved');
  assert.deepEqual(await storage.list('_tributary/athena', { recursive: true }), []);
  assert.equal(engine.tables.size, 0);

  // Athena's catalog not the lake's (its tracks partitions never registered): refused before anything is written, naming a file.
  const lagging = Object.create(catalog, { getPartitions: { value: async (t: string) => (t === 'tracks' ? [] : catalog.getPartitions(t)) } }) as EmbeddedCatalog;
  const stale = new AthenaEngine({ bucketStorage: new S3Storage({ bucket: storage.bucket, client }), bucket: storage.bucket, lakePrefix: 'lake', catalog: lagging, lakeStorage: storage, database: 'tributary' });
  const staleStandIn = await startAthenaStandIn({ execute: stale.execute });
  const staleAthena = new AthenaQuery({ client: staleStandIn.client(), database: 'tributary', poll: { initialDelayMs: 5, maxDelayMs: 20 } });
  await assert.rejects(runAthenaMerge(storage, catalog, staleAthena, { database: 'tributary', table: 'tracks' }), /Athena does not read s3:\/\/.*\/lake\/tracks\/dt=.*nothing was written/);
  assert.ok(!stale.statements.some((s) => s.startsWith('CREATE TABLE')));
  assertQuick(await quickAnswers(storage, catalog), await expectedAnswers([...input.lines, ...late.lines, ...later.lines, ...more.lines], dir));
});
