import assert from 'node:assert/strict';
import { test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { verifyLake } from '../../src/verify/verify.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { runCli, tempDir } from '../support/tmp.ts';

const track = (id: string, event: string, receivedAt: string) => JSON.stringify({ type: 'track', event, anonymousId: 'a1', messageId: id, receivedAt });

/** An input of sample events plus lines with known fates: 2 invalid, one messageId given twice, hostile event names. */
function writeInput(file: string): { valid: number; invalid: number } {
  const lines = [...sampleLines({ count: 3000, seed: 11 })];
  lines.push('not json', JSON.stringify({ type: 'track', anonymousId: 'a' })); // invalid: not JSON; a track without event
  lines.push(track('twice', 'Retry', '2026-11-20T10:00:00Z'), track('twice', 'Retry', '2026-11-20T10:00:00Z')); // a client retry: two rows
  lines.push(track('h1', '../../etc/passwd', '2026-11-21T10:00:00Z'), track('h2', 'Café ☕', '2026-11-21T11:00:00Z'));
  writeFileSync(file, lines.join('\n') + '\n');
  return { valid: lines.length - 2, invalid: 2 };
}

async function ingest(lake: string, files: string[], partitionBy = 'dt'): Promise<void> {
  const { storage, catalog } = openLocalLake(lake);
  await new Ingestor(storage, catalog, { partitionBy }).run(new FileSource(files));
}

for (const partitionBy of ['dt', 'event,dt']) {
  test(`verify (${partitionBy}): parity after ingest; a lost file, a second ingest of overlapping events and lost dead letters are each found and counted exactly`, async () => {
    const dir = tempDir('verify');
    const lake = `${dir}/lake`;
    const input = `${dir}/in.ndjson`;
    const { valid, invalid } = writeInput(input);
    await ingest(lake, [input], partitionBy);
    const { storage, catalog } = openLocalLake(lake);
    const check = () => verifyLake(storage, catalog, new FileSource([input]), { partitionBy });

    const ok = await check();
    assert.equal(ok.parity, true);
    assert.equal(ok.expected, valid);
    assert.equal(ok.found, valid);
    assert.equal(ok.invalid, invalid);
    assert.equal(ok.deadLettersMissing, 0);
    assert.deepEqual([ok.missing, ok.extra], [0, 0]);
    assert.equal(ok.tables.find((t) => t.table === 'tracks')!.partitions.reduce((a, p) => a + p.expected, 0), ok.tables.find((t) => t.table === 'tracks')!.expected);

    // Lose one committed file of pages: exactly its rows are missing, in its partition.
    const pages = (await listCommittedFiles(storage, catalog, 'pages'))[0]!;
    const db = await (await DuckDBInstance.create(':memory:')).connect();
    const lost = Number((await db.runAndReadAll(`SELECT count(*) FROM read_parquet('${storage.localPath(pages.key)}')`)).getRows()[0]![0]);
    assert.ok(lost > 0);
    await storage.delete([pages.key]);
    const gone = await check();
    assert.equal(gone.parity, false);
    assert.equal(gone.missing, lost);
    assert.equal(gone.extra, 0);
    const pt = gone.tables.find((t) => t.table === 'pages')!;
    assert.equal(pt.missing, lost);
    assert.equal(pt.found, pt.expected - lost);
    assert.equal(pt.partitions.filter((p) => p.missing > 0).length, 1, 'one partition lost its file');

    // A second input holding 100 of the same track events (another file: another shard, so ingest keeps them): 100 extra rows.
    const overlap = `${dir}/overlap.ndjson`;
    const tracks = [...sampleLines({ count: 3000, seed: 11 })].filter((l) => JSON.parse(l).type === 'track');
    writeFileSync(overlap, tracks.slice(0, 100).join('\n') + '\n');
    await ingest(lake, [overlap], partitionBy);
    const twice = await check();
    assert.equal(twice.extra, 100);
    assert.equal(twice.missing, lost);

    // The dead letters lost too.
    await storage.delete((await storage.list('_deadletter', { recursive: true })).map((o) => o.key));
    const noDead = await check();
    assert.equal(noDead.deadLettersMissing, invalid);
  });
}

test('tributary verify: exit 0 on parity, 1 naming what differs, --json, and a lake that lacks a table altogether', async () => {
  const dir = tempDir('verify-cli');
  const lake = `${dir}/lake`;
  const input = `${dir}/in.ndjson`;
  const { valid } = writeInput(input);
  assert.equal((await runCli(['ingest', '--lake', lake, input])).code, 0);
  const ok = await runCli(['verify', '--lake', lake, input]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`holds the input exactly: ${valid.toLocaleString('en-US')} events`));
  const json = await runCli(['verify', '--lake', lake, '--json', input]);
  assert.equal(json.code, 0);
  const r = JSON.parse(json.stdout);
  assert.equal(r.parity, true);
  assert.equal(r.expected, valid);
  // Events of a table the lake has never seen: all missing.
  const more = `${dir}/more.ndjson`;
  writeFileSync(more, JSON.stringify({ type: 'alias', userId: 'u9', previousId: 'p9', messageId: 'al1', receivedAt: '2026-11-22T00:00:00Z' }) + '\n');
  const empty = `${dir}/empty-lake`;
  const missing = await runCli(['verify', '--lake', empty, more]);
  assert.equal(missing.code, 1);
  assert.match(missing.stdout, /aliases: 1 expected, 0 found, 1 missing, 0 extra/);
  assert.match(missing.stdout, /does NOT hold the input exactly: 1 events missing/);
  const usage = await runCli(['verify', '--lake', lake]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /no input given/);
});
