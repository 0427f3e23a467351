import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
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

  const dry = await runCli(['compact', 'json', '--from', `${dir}/segment-logs`, '--lake', lake, '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(JSON.parse(dry.stdout).files, 12);
  const r = await runCli(['compact', 'json', '--from', `${dir}/segment-logs`, '--lake', lake, '--json', '--target-file-size', '32KB']);
  assert.equal(r.code, 0, r.stderr);
  const stats = JSON.parse(r.stdout);
  assert.deepEqual([stats.inputs, stats.written, stats.deadLettered], [12, expected.valid, expected.invalid]);
  const got = await lakeAnswers(lake);
  assertGroundTruth(got, expected);

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
  const got = await lakeAnswers(lake);
  assert.equal(got.total, expected.valid);
  assert.equal(got.distinctIds, expected.valid);
  assert.deepEqual(got.perEvent, expected.perEvent);
  assert.deepEqual(got.experiments, expected.experiments);
  const again = JSON.parse((await runCli(merge)).stdout);
  assert.equal(again.merged, 0, 'everything merged');
});
