import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AthenaQuery } from '../../src/athena/athena-query.ts';
import { ATHENA_MAX_WRITERS, athenaMergeScript, planAthenaMerge, runAthenaMerge } from '../../src/compact/athena-merge.ts';
import { runMerge } from '../../src/compact/merge.ts';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { GENERATION_RANGES_NAME } from '../../src/ingest/file-names.ts';
import { openLocalLake } from '../../src/lake.ts';
import { assertQuick, fileCount, ingestInPieces, moreEvents, quickAnswers, s3LakeWithAthena } from '../support/athena-lake.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { assertGroundTruth, lakeAnswers } from '../support/lake-answers.ts';
import { rerunWithOpenSslLegacyProviderIfNeeded } from '../support/s3rver.ts';
import { runCli, tempDir } from '../support/tmp.ts';

rerunWithOpenSslLegacyProviderIfNeeded(); // s3rver (in this process) needs DES for its listing tokens

test('the emitted statements: CTAS then INSERT INTO per staging table, every planned file read once, the 100-writer and length limits kept', async () => {
  const dir = tempDir('athsql');
  const { storage, catalog } = openLocalLake(`${dir}/lake`);
  await ingestInPieces(storage, catalog, dir, 3000, 81, 10);
  const before = await fileCount(storage, catalog);
  // A small target size gives partitions several buckets; a short statement limit splits file lists.
  const plan = await planAthenaMerge(storage, catalog, { database: 'analytics', locationRoot: 's3://lake-bucket/events/', targetFileBytes: 12 * 1024, maxStatementChars: 2000, runId: 'r1' });
  assert.ok(plan.plans.length >= 12, `partitions planned: ${plan.plans.length}`);
  assert.ok(plan.staging.some((s) => s.bucketCount > 1), 'several files per partition somewhere');
  const readBy = new Map<string, number>();
  const checkedBy = new Map<string, number>();
  for (const st of plan.staging) {
    assert.match(st.name, /^tributary_compact_r1_[a-z]+_b\d+$/);
    const kinds = st.statements.map((s) => s.kind);
    const writes = kinds.filter((k) => k === 'create' || k === 'insert');
    assert.equal(kinds[kinds.indexOf('create') - 1], 'check', 'checks come before the writes');
    assert.deepEqual(writes, ['create', ...writes.slice(1).map(() => 'insert')], 'one CTAS, then INSERT INTO');
    assert.deepEqual(kinds.slice(-2), ['count', 'drop']);
    const ctas = st.statements.find((s) => s.kind === 'create')!.sql;
    assert.ok(ctas.startsWith(`CREATE TABLE analytics.${st.name}\nWITH (\n  format = 'PARQUET',\n  write_compression = 'ZSTD',\n`), ctas.slice(0, 200));
    assert.ok(ctas.includes(`  external_location = 's3://lake-bucket/events/${plan.stagingRoot}/${st.table}-b${st.bucketCount}/',\n`));
    assert.match(plan.stagingRoot, /^_tributary\/athena\/\d{13}-r1$/);
    assert.ok(ctas.includes(`  partitioned_by = ARRAY['dt'],\n  bucketed_by = ARRAY['message_id'],\n  bucket_count = ${st.bucketCount}\n) AS\nSELECT `));
    const cols = (await catalog.getTable(st.table))!.columns.map((c) => `"${c.name}"`).join(', ');
    assert.ok(ctas.includes(`) AS\nSELECT ${cols}, "dt"\nFROM "analytics"."${st.table}"\nWHERE ("dt" = '2026-11-`), 'every column, the partition key last');
    assert.match(ctas, /\nWHERE \("dt" = '2026-11-\d\d' AND "\$path" IN \('s3:\/\/lake-bucket\/events\/[a-z]+\/dt=2026-11-\d\d\/file\+/);
    assert.equal(st.statements.find((s) => s.kind === 'drop')!.sql, `DROP TABLE IF EXISTS analytics.${st.name}`);
    assert.equal(st.statements.find((s) => s.kind === 'count')!.sql, `SELECT "dt", count(*) AS "rows"\nFROM "analytics"."${st.name}"\nGROUP BY "dt"`);
    for (const s of st.statements) {
      assert.ok(s.sql.length <= 2000, `${s.kind} of ${s.sql.length} characters`);
      const parts = new Set([...s.sql.matchAll(/\("dt" = '([^']+)'/g)].map((m) => m[1]));
      assert.ok(parts.size * st.bucketCount <= ATHENA_MAX_WRITERS, `${parts.size} partitions × ${st.bucketCount} buckets`);
      const uris = [...s.sql.matchAll(/'(s3:\/\/lake-bucket\/events\/[^']+\.parquet)'/g)].map((m) => m[1]!);
      const into = s.kind === 'check' ? checkedBy : s.kind === 'create' || s.kind === 'insert' ? readBy : null;
      for (const u of uris) into?.set(u, (into.get(u) ?? 0) + 1);
    }
  }
  assert.ok(plan.staging.some((st) => st.statements.filter((s) => s.kind === 'insert').length > 0), 'some table needed INSERT INTO');
  const planned = plan.plans.flatMap((p) => p.bins.flat().map((f) => `s3://lake-bucket/events/${f.key}`)).sort();
  assert.deepEqual([...readBy.keys()].sort(), planned, 'every planned file is read by the writes');
  assert.ok([...readBy.values()].every((n) => n === 1), 'and by one statement only');
  assert.deepEqual([...checkedBy.keys()].sort(), planned);

  // The CLI prints the same script (nothing changes); bad values are named.
  const cli = await runCli(['compact', 'merge', '--engine', 'athena', '--lake', `${dir}/lake`, '--location', 's3://lake-bucket/events', '--database', 'analytics', '--target-file-size', '12KB']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /^-- tributary compact merge --engine athena: run [a-z0-9]+, database analytics, lake s3:\/\/lake-bucket\/events$/m);
  assert.equal((cli.stdout.match(/^CREATE TABLE analytics\.tributary_compact_/gm) ?? []).length, plan.staging.length);
  assert.equal((cli.stdout.match(/^DROP TABLE IF EXISTS /gm) ?? []).length, plan.staging.length);
  assert.equal(await fileCount(storage, catalog), before, 'printing changes nothing');
  const bad = async (args: string[], pattern: RegExp) => {
    const r = await runCli(['compact', 'merge', '--lake', `${dir}/lake`, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  };
  await bad(['--engine', 'spark'], /--engine: "spark" is not valid; expected duckdb or athena/);
  await bad(['--run'], /--run applies to --engine athena only/);
  await bad(['--engine', 'athena', '--location', 's3://b/x', '--database', 'My-DB'], /--database: "My-DB" is not valid/);
  await bad(['--engine', 'athena'], /is local: Athena reads S3/);
  await bad(['--engine', 'athena', '--location', 's3://b/x', '--run'], /is local; Athena writes to S3/);
  const json = await runCli(['compact', 'json', '--from', dir, '--lake', `${dir}/lake`, '--engine', 'athena']);
  assert.equal(json.code, 2);
  assert.match(json.stderr, /compact json --engine athena: not supported/);
});

test('--engine athena --run against the Athena stand-in: the lake answers the ground truth, re-ingest skips everything, later merges keep the ranges', async () => {
  const { dir, storage, catalog, input, engine, standIn, env, lake } = await s3LakeWithAthena('athrun', 3000, 83, 6);
  const expected = await expectedAnswers(input.lines, dir);
  const before = await fileCount(storage, catalog);
  const r = await runCli(['compact', 'merge', '--engine', 'athena', '--run', '--lake', lake, '--json', '--target-file-size', '64KB', '--workgroup', 'primary', '--output', 's3://athena-results/x/'], { env });
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.ok(result.merged >= 4, `merged ${result.merged}`);
  assert.equal(result.merged, result.plans.length, 'every planned partition swapped');
  assert.deepEqual(result.skipped, []);
  assert.ok(engine.statements.some((s) => s.startsWith('INSERT INTO ') || s.includes('bucket_count = 2')), 'bucketing or INSERT INTO used');
  assert.equal(engine.tables.size, 0, 'staging tables dropped');
  assert.deepEqual(await storage.list('_tributary/athena', { recursive: true }), [], 'staging files deleted');
  const after = await fileCount(storage, catalog);
  assert.ok(after < before && result.filesOut * 1.5 < result.filesIn, `${before} files → ${after}; merged ${result.filesIn} → ${result.filesOut}`);
  // Swapped partitions hold Athena's files under a new generation, with the ranges sidecar.
  const parts = await catalog.getPartitions('tracks');
  for (const p of parts) {
    assert.match(p.location, /^tracks\/dt=[\d-]+\/_g\d+-\d+-[0-9a-f]+$/);
    const names = (await storage.list(p.location)).map((o) => o.key.slice(p.location.length + 1));
    assert.ok(names.includes(GENERATION_RANGES_NAME), names.join(' '));
    assert.ok(names.some((n) => /^a\+[0-9a-f]{32}-\d+\.parquet$/.test(n)));
  }
  assertGroundTruth(await lakeAnswers(lake, env), expected);
  // The old files stay for the grace period (1 h), then go.
  assert.ok((await storage.list('_tributary/gc')).length >= result.merged);

  // Re-ingesting the same input writes nothing: the ranges came through the sidecars.
  const reingest = async (files: string[]) => new Ingestor(storage, catalog, { decodeWorkers: 0 }).run(new FileSource(files));
  const again = await reingest(input.files);
  assert.deepEqual([again.written, again.deadLettered, again.skipped], [0, 0, expected.valid + expected.invalid]);
  // More events, then the DuckDB engine merges Athena's files with the new ones, then Athena merges
  // the DuckDB engine's: still exact, and re-ingesting still writes nothing.
  const more = moreEvents(dir, 'more', 1500, 85);
  for (const f of more.files) await reingest([f]);
  const m = await runMerge(storage, catalog, { smallFileBytes: 1 << 20, graceMs: 0 });
  assert.ok(m.merged > 0);
  // Yet more events: every partition now holds a DuckDB-merged file (ranges in its footer) and new small ones.
  const extra = moreEvents(dir, 'extra', 600, 86);
  await reingest(extra.files);
  const both = await expectedAnswers([...input.lines, ...more.lines, ...extra.lines], dir);
  assertQuick(await quickAnswers(storage, catalog), both);
  const athena = new AthenaQuery({ client: standIn.client(), database: 'tributary', poll: { initialDelayMs: 5, maxDelayMs: 20 } });
  const third = await runAthenaMerge(storage, catalog, athena, { database: 'tributary', smallFileBytes: 1 << 20, graceMs: 0 });
  assert.ok(third.merged > 0 && third.skipped.length === 0, JSON.stringify(third.skipped));
  assertQuick(await quickAnswers(storage, catalog), both);
  const last = await reingest([...input.files, ...more.files, ...extra.files]);
  assert.equal(last.written, 0, 'merged by both engines: re-ingest still skips everything');
  assert.ok(standIn.succeeded('StartQueryExecution').length > 0);
});


test('Athena leaves out partitions whose files predate a promoted column (it would write NULL there); the DuckDB engine merges them', async () => {
  const dir = tempDir('athena-promoted');
  const { storage, catalog } = openLocalLake(`${dir}/lake`);
  const a = moreEvents(dir, 'a', 800, 91);
  const b = moreEvents(dir, 'b', 800, 92);
  await new Ingestor(storage, catalog, { decodeWorkers: 0 }).run(new FileSource(a.files));
  await new Ingestor(storage, catalog, { decodeWorkers: 0, promote: { track: { revenue: 'double' } } }).run(new FileSource(b.files));
  const plan = await planAthenaMerge(storage, catalog, { database: 'tributary', locationRoot: 's3://bucket/lake', smallFileBytes: 1 << 20 });
  const tracksDays = (await catalog.getPartitions('tracks')).length;
  assert.equal(plan.leftOut.length, tracksDays, JSON.stringify(plan.leftOut));
  for (const l of plan.leftOut) {
    assert.equal(l.table, 'tracks');
    assert.match(l.reason, /predates? a promoted column \(tracks\/dt=[^)]+\): Athena would write NULL there; merge it without --engine athena/);
  }
  assert.ok(plan.plans.length > 0 && plan.plans.every((p) => p.table !== 'tracks'), 'the other tables are planned');
  assert.match(athenaMergeScript(plan), /^-- left out: tracks 2026-11-2\d: 1 of its files predates a promoted column/m);
  const duck = await runMerge(storage, catalog, { smallFileBytes: 1 << 20, graceMs: 0, table: 'tracks' });
  assert.equal(duck.merged, tracksDays);
  const again = await planAthenaMerge(storage, catalog, { database: 'tributary', locationRoot: 's3://bucket/lake', smallFileBytes: 1 << 20 });
  assert.deepEqual(again.leftOut, [], 'once merged with the column, nothing is left out');
});
