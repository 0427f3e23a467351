import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readdirSync } from 'node:fs';
import { runMerge, planMerge } from '../../src/compact/merge.ts';
import { partitionKey } from '../../src/catalog/catalog.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { PartitionGuard } from '../../src/catalog/partition-guard.ts';
import { openLocalLake } from '../../src/lake.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { writeTestInput } from '../support/data.ts';
import { lakeAnswers } from '../support/lake-answers.ts';
import { runCli, spawnCli, tempDir } from '../support/tmp.ts';

const TABLES = ['tracks', 'identifies', 'pages', 'screens', 'groups', 'aliases'];

async function fileCount(lake: string): Promise<number> {
  const { storage, catalog } = openLocalLake(lake);
  let n = 0;
  for (const t of await catalog.listTables()) n += (await listCommittedFiles(storage, catalog, t.name)).length;
  return n;
}

test('merge turns many small files into few, answers unchanged, re-ingest still skips everything', async () => {
  const dir = tempDir('merge');
  const lake = `${dir}/lake`;
  const { files, lines } = writeTestInput(dir, 8000, 31);
  const expected = await expectedAnswers(lines, dir);
  assert.equal((await runCli(['ingest', '--lake', lake, '--target-file-size', '8KB', ...files])).code, 0);
  const before = await fileCount(lake);
  const answers = await lakeAnswers(lake);
  assert.equal(answers.total, expected.valid);

  const dry = await runCli(['compact', 'merge', '--lake', lake, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /would merge: tracks \(2026-11-2\d\): \d+ files/);
  assert.equal(await fileCount(lake), before, 'a dry run changes nothing');

  const r = await runCli(['compact', 'merge', '--lake', lake, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.ok(result.merged >= 12, `partitions merged: ${result.merged}`);
  const after = await fileCount(lake);
  assert.ok(after < before / 3, `${before} files → ${after}`);
  assert.deepEqual(await lakeAnswers(lake), answers);

  const again = JSON.parse((await runCli(['ingest', '--lake', lake, '--json', ...files])).stdout);
  assert.equal(again.written, 0);
  assert.equal(again.skipped, expected.valid + expected.invalid);
  const second = JSON.parse((await runCli(['compact', 'merge', '--lake', lake, '--json'])).stdout);
  assert.equal(second.merged, 0, 'nothing left to merge');
});

test('compaction while an ingest writes and queries run: every answer exact, before, during and after the swaps', async () => {
  const dir = tempDir('mergeconc');
  const lake = `${dir}/lake`;
  const { files, lines } = writeTestInput(dir, 30_000, 33);
  const expected = await expectedAnswers(lines, dir);
  const child = spawnCli(['ingest', '--lake', lake, '--json', '--target-file-size', '16KB', ...files]);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  let running = true;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { running = false; resolve(code); }));
  const { storage, catalog } = openLocalLake(lake);
  let merges = 0;
  let swapped = 0;
  const compactor = (async () => {
    while (running) {
      const r = await runMerge(storage, catalog, { graceMs: 3000, smallFileBytes: 1 << 20 });
      merges++;
      swapped += r.merged;
      await new Promise((res) => setTimeout(res, 100));
    }
  })();
  let last = 0;
  let queries = 0;
  while (running) {
    const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
    try {
      const present = TABLES.filter((t) => q.tables.some((d) => d.name === t));
      if (present.length > 0) {
        const { rows } = await q.query(`SELECT count(*), count(DISTINCT message_id) FROM (${present.map((t) => `SELECT message_id FROM ${t}`).join(' UNION ALL ')})`);
        const [n, d] = rows[0] as [number, number];
        assert.equal(n, d, 'no row twice');
        assert.ok(n >= last, `count went down from ${last} to ${n}`);
        last = n;
      }
    } finally {
      q.close();
    }
    queries++;
  }
  assert.equal(await exited, 0, stderr);
  await compactor;
  const final = await runMerge(storage, catalog, { graceMs: 3000, smallFileBytes: 1 << 20 });
  swapped += final.merged;
  assert.ok(swapped >= 5, `swaps happened during the run (${swapped} in ${merges} merges, ${queries} queries)`);
  const got = await lakeAnswers(lake);
  assert.equal(got.total, expected.valid);
  assert.equal(got.distinctIds, got.total);
  assert.deepEqual(got.perEvent, expected.perEvent);
  assert.deepEqual(got.experiments, expected.experiments);
});

test('a partition under another compaction is skipped; a stale swap is refused; replaced files go after the grace period', async () => {
  const dir = tempDir('mergeguard');
  const lake = `${dir}/lake`;
  const { files } = writeTestInput(dir, 3000, 35);
  await runCli(['ingest', '--lake', lake, '--target-file-size', '4KB', ...files]);
  const { storage, catalog } = openLocalLake(lake);
  const parts = await catalog.getPartitions('tracks');
  const held = parts[0]!;
  const release = await new PartitionGuard(storage).compact('tracks', partitionKey(held.values));
  assert.ok(release);
  const r = await runMerge(storage, catalog, { table: 'tracks', graceMs: 60_000 });
  assert.deepEqual(r.skipped.map((s) => [s.values, s.reason]), [[held.values, 'another compaction holds this partition']]);
  assert.equal(r.merged, parts.length - 1);
  await release!();

  // A swap based on an old version loses to the one that happened.
  const moved = (await catalog.getPartitions('tracks')).find((p) => p.values[0] === parts[1]!.values[0])!;
  await assert.rejects(catalog.swapPartitionLocation('tracks', moved.values, 'tracks/elsewhere', moved.version - 1), (e: Error & { conflict?: boolean }) => e.conflict === true);

  // The replaced files are still there (grace), and gone once it is over.
  const oldDir = `${lake}/tracks/dt=${parts[1]!.values[0]}`;
  assert.ok(readdirSync(oldDir).some((f) => f.endsWith('.parquet')));
  const gc = await runMerge(storage, catalog, { table: 'identifies', graceMs: 60_000 });
  assert.equal(gc.garbageDeleted, 0, 'not yet');
  const { collectGarbage } = await import('../../src/compact/merge.ts');
  // Pretend the grace period is over by collecting with every entry due: move the clock through the entries' names.
  for (const e of await storage.list('_tributary/gc')) {
    const body = await storage.get(e.key);
    await storage.delete([e.key]);
    await storage.put(e.key.replace(/\/\d+-/, '/000000000000000-'), body!);
  }
  assert.ok((await collectGarbage(storage, catalog, 60_000)) > 0);
  assert.ok(!readdirSync(oldDir).some((f) => f.endsWith('.parquet')), 'old files deleted');
  assert.equal((await planMerge(storage, catalog, { table: 'tracks' })).length, 1, 'only the held partition is left to merge');
});
