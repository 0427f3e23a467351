import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { expectedAnswers } from '../support/ground-truth.ts';
import { writeTestInput } from '../support/data.ts';
import { lakeAnswers } from '../support/lake-answers.ts';
import { runCli, spawnCli, tempDir } from '../support/tmp.ts';

function countParquet(dir: string): number {
  try {
    return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((p) => p.endsWith('.parquet') && !p.includes('_tributary')).length;
  } catch {
    return 0;
  }
}

/** Starts an ingest and SIGKILLs it once `files` data files are committed; resolves true if it was killed. */
async function killAfter(args: string[], lake: string, files: number): Promise<boolean> {
  const child = spawnCli(args);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (;;) {
    const state = await Promise.race([exited.then(() => 'exited' as const), new Promise((r) => setTimeout(r, 20)).then(() => 'running' as const)]);
    if (state === 'exited') {
      assert.equal(await exited, 0, stderr);
      return false;
    }
    if (countParquet(lake) >= files) {
      child.kill('SIGKILL');
      await exited;
      return true;
    }
  }
}

test('an ingest SIGKILLed at several moments and run again ends with every event exactly once', async () => {
  const dir = tempDir('kill');
  const lake = `${dir}/lake`;
  const { files, lines } = writeTestInput(dir, 30_000, 9);
  const expected = await expectedAnswers(lines, dir);
  const args = ['ingest', '--lake', lake, '--json', '--target-file-size', '16KB', ...files];
  let kills = 0;
  for (const after of [1, 20, 45, 90]) if (await killAfter(args, lake, after)) kills++;
  assert.ok(kills >= 2, `the ingest was interrupted at least twice (${kills})`);
  const final = await runCli(args);
  assert.equal(final.code, 0, final.stderr);
  const stats = JSON.parse(final.stdout);
  assert.ok(stats.skipped > 0, 'the last run skipped what the killed runs had committed');

  const got = await lakeAnswers(lake);
  assert.equal(got.total, expected.valid, 'no event lost');
  assert.equal(got.distinctIds, got.total, 'no event twice');
  assert.deepEqual(got.perType, expected.perType);
  assert.deepEqual(got.perEvent, expected.perEvent);
  assert.deepEqual(got.experiments, expected.experiments);
  assert.equal(got.revenueCents, expected.revenueCents);

  const again = await runCli(args);
  assert.deepEqual({ ...JSON.parse(again.stdout), seconds: 0 }, { read: expected.valid + expected.invalid, written: 0, deadLettered: 0, skipped: expected.valid + expected.invalid, files: 0, bytes: 0, seconds: 0 });
});

/** Every tracks file's rows, in file order, are ordered by event (UTF-8 bytes) then received_at. */
async function assertTracksOrdered(lake: string): Promise<void> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const files = readdirSync(`${lake}/tracks`, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.parquet'));
  assert.ok(files.length > 0);
  const conn = await (await DuckDBInstance.create(':memory:')).connect();
  try {
    for (const f of files) {
      const rows = (await conn.runAndReadAll(`SELECT event, epoch_ms(received_at) FROM read_parquet('${lake}/tracks/${f}', file_row_number=true) ORDER BY file_row_number`)).getRows();
      for (let i = 1; i < rows.length; i++) {
        const c = Buffer.compare(Buffer.from(String(rows[i - 1]![0])), Buffer.from(String(rows[i]![0]))) || Number(rows[i - 1]![1]) - Number(rows[i]![1]);
        assert.ok(c <= 0, `${f}: row ${i} out of order`);
      }
    }
  } finally {
    conn.closeSync();
  }
}

for (const order of ['random', 'arrival'] as const) {
  test(`a file that grew is ingested again as a log: only the new lines are added (receivedAt in ${order} order)`, async () => {
    const dir = tempDir('grow');
    const lake = `${dir}/lake`;
    const { sampleLines } = await import('../../src/sample/generate.ts');
    const { appendFileSync, writeFileSync } = await import('node:fs');
    // Rare event names too, so that some appear in the new lines' first batch only before the resume point.
    const lines = [...sampleLines({ count: 3000, seed: 21, order, extraEventNames: Array.from({ length: 40 }, (_, i) => `Rare ${i}`) })];
    writeFileSync(`${dir}/log.ndjson`, lines.slice(0, 2000).join('\n') + '\n');
    const first = JSON.parse((await runCli(['ingest', '--lake', lake, '--json', `${dir}/log.ndjson`])).stdout);
    assert.equal(first.read, 2000);
    appendFileSync(`${dir}/log.ndjson`, lines.slice(2000).join('\n') + '\n');
    const second = JSON.parse((await runCli(['ingest', '--lake', lake, '--json', `${dir}/log.ndjson`])).stdout);
    assert.deepEqual([second.read, second.skipped, second.written], [3000, 2000, 1000]);
    const got = await lakeAnswers(lake);
    assert.equal(got.total, 3000);
    assert.equal(got.distinctIds, 3000);
    await assertTracksOrdered(lake);
  });
}
