import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { sampleLines } from '../../src/sample/generate.ts';
import { segmentLayout } from '../support/data.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { assertGroundTruth, cliQuery, lakeAnswers } from '../support/lake-answers.ts';
import { runCli, spawnCli, tempDir } from '../support/tmp.ts';

test('Segment S3-destination backfill converts to exactly the ground truth; a second run changes nothing', async () => {
  const dir = tempDir('seg');
  const lake = `${dir}/lake`;
  const lines = [...sampleLines({ count: 12_000, seed: 41, invalidRate: 0.02 })];
  segmentLayout(dir, lines);
  const expected = await expectedAnswers(lines, dir);

  // The plan reads every input (they fit in the default sample): its counts are the ground truth's.
  const dry = await runCli(['compact', 'json', '--from', `${dir}/segment-logs`, '--lake', lake, '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout);
  assert.deepEqual([plan.inputs, plan.inputFiles.length, plan.exact], [12, 12, true]);
  assert.deepEqual([plan.events, plan.invalid, plan.alreadyInLake], [expected.valid + expected.invalid, expected.invalid, 0]);
  const planned: Record<string, number> = {};
  for (const p of plan.partitions as Array<{ table: string; values: string[]; events: number; files: number }>) {
    assert.match(p.values[0]!, /^dt=\d{4}-\d{2}-\d{2}$/);
    assert.ok(p.files >= 1);
    planned[p.table] = (planned[p.table] ?? 0) + p.events;
  }
  const tableOf: Record<string, string> = { track: 'tracks', identify: 'identifies', page: 'pages', screen: 'screens', group: 'groups', alias: 'aliases' };
  assert.deepEqual(planned, Object.fromEntries(Object.entries(expected.perType).map(([t, n]) => [tableOf[t]!, n])));
  assert.equal(existsSync(lake), false, 'a dry run creates nothing');
  const r = await runCli(['compact', 'json', '--from', `${dir}/segment-logs`, '--lake', lake, '--json', '--target-file-size', '32KB']);
  assert.equal(r.code, 0, r.stderr);
  const stats = JSON.parse(r.stdout);
  assert.deepEqual([stats.inputs, stats.written, stats.deadLettered], [12, expected.valid, expected.invalid]);
  const got = await lakeAnswers(lake);
  assertGroundTruth(got, expected);
  // Per partition, the plan's events are the rows the conversion committed there.
  const rows = await cliQuery(lake, "SELECT 'tracks' AS t, strftime(dt, '%Y-%m-%d') AS d, count(*) AS n FROM tracks GROUP BY ALL UNION ALL SELECT 'pages', strftime(dt, '%Y-%m-%d'), count(*) FROM pages GROUP BY ALL");
  for (const row of rows) {
    const p = (plan.partitions as Array<{ table: string; values: string[]; events: number }>).find((q) => q.table === row.t && q.values[0] === `dt=${row.d}`);
    assert.equal(p?.events, Number(row.n), `${row.t} ${row.d}`);
  }
  // Planned again after the conversion: everything is already in the lake, nothing to write.
  const after = JSON.parse((await runCli(['compact', 'json', '--from', `${dir}/segment-logs`, '--lake', lake, '--dry-run', '--json'])).stdout);
  assert.deepEqual([after.alreadyInLake, after.files, after.partitions.length], [expected.valid, 0, 0]);

  const again = JSON.parse((await runCli(['compact', 'json', '--from', `${dir}/segment-logs`, '--lake', lake, '--json'])).stdout);
  assert.deepEqual([again.written, again.deadLettered, again.skipped], [0, 0, expected.valid + expected.invalid]);
});

test('an event with neither receivedAt nor timestamp is dated by its Segment day directory', async () => {
  const dir = tempDir('seg');
  const day = Date.UTC(2026, 9, 5);
  mkdirSync(`${dir}/segment-logs/s1/${day}`, { recursive: true });
  writeFileSync(`${dir}/segment-logs/s1/${day}/part.gz`, gzipSync(JSON.stringify({ type: 'track', event: 'Undated', anonymousId: 'a', messageId: 'u1' }) + '\n'));
  const r = await runCli(['compact', 'json', '--from', `${dir}/segment-logs`, '--lake', `${dir}/lake`]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await cliQuery(`${dir}/lake`, "SELECT strftime(dt, '%Y-%m-%d') AS d, CAST(received_at AS VARCHAR) AS r FROM tracks"), [{ d: '2026-10-05', r: '2026-10-05 00:00:00' }]);
});

async function killSoon(args: string[], ms: number): Promise<void> {
  const child = spawnCli(args);
  const exited = new Promise((r) => child.on('exit', r));
  await new Promise((r) => setTimeout(r, ms));
  child.kill('SIGKILL');
  await exited;
}

test('both job kinds SIGKILLed at random moments, then run again, end exact', async () => {
  const dir = tempDir('segkill');
  const lake = `${dir}/lake`;
  const lines = [...sampleLines({ count: 30_000, seed: 43, invalidRate: 0.01 })];
  segmentLayout(dir, lines, 6);
  const expected = await expectedAnswers(lines, dir);
  const convert = ['compact', 'json', '--from', `${dir}/segment-logs`, '--lake', lake, '--json', '--target-file-size', '16KB'];
  for (const ms of [700, 1500, 2500]) await killSoon(convert, ms + Math.floor(Math.random() * 400));
  assert.equal((await runCli(convert)).code, 0);
  const merge = ['compact', 'merge', '--lake', lake, '--json', '--grace', '0s'];
  for (const ms of [600, 1200]) await killSoon(merge, ms + Math.floor(Math.random() * 300));
  const m = await runCli(merge);
  assert.equal(m.code, 0, m.stderr);
  // A killed merge's partition lease does not hold the next run up (its holder is known dead).
  assert.deepEqual(JSON.parse(m.stdout).skipped, []);
  const got = await lakeAnswers(lake);
  assert.equal(got.total, expected.valid);
  assert.equal(got.distinctIds, expected.valid);
  assert.deepEqual(got.perEvent, expected.perEvent);
  assert.deepEqual(got.experiments, expected.experiments);
  const again = JSON.parse((await runCli(merge)).stdout);
  assert.equal(again.merged, 0, 'everything merged');
});
