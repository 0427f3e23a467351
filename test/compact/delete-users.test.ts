import assert from 'node:assert/strict';
import { test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { deleteUsers } from '../../src/compact/delete-users.ts';
import { verifyLake } from '../../src/verify/verify.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { runCli, tempDir } from '../support/tmp.ts';

const USER = 'user-85';
const ANON = 'anon-18';

/** Sample events, plus an alias whose previousId is ANON and two invalid records, one naming USER. */
function writeInput(file: string): void {
  const lines = [...sampleLines({ count: 3000, seed: 5 })];
  lines.push(JSON.stringify({ type: 'alias', userId: 'user-new', previousId: ANON, messageId: 'alias-anon', receivedAt: '2026-11-21T12:00:00Z' }));
  lines.push(JSON.stringify({ type: 'track', userId: USER, messageId: 'no-event' })); // invalid: no event
  lines.push('not json at all');
  writeFileSync(file, lines.join('\n') + '\n');
}

/** Ground truth from the raw lines, by DuckDB's JSON reader (not the project's decoder): rows per table, and rows naming the users. */
async function truth(file: string): Promise<{ all: Record<string, number>; named: Record<string, number> }> {
  const db = await (await DuckDBInstance.create(':memory:')).connect();
  const rows = (
    await db.runAndReadAll(
      `SELECT type, count(*), count(*) FILTER (WHERE userId = '${USER}' OR anonymousId = '${ANON}' OR previousId IN ('${USER}', '${ANON}')) ` +
        `FROM read_json('${file}', format='newline_delimited', ignore_errors=true, columns={type: 'VARCHAR', event: 'VARCHAR', userId: 'VARCHAR', anonymousId: 'VARCHAR', previousId: 'VARCHAR'}) ` +
        `WHERE type IS NOT NULL AND NOT (type = 'track' AND event IS NULL) GROUP BY 1`,
    )
  ).getRows() as Array<[string, bigint, bigint]>;
  const table = (t: string) => ({ track: 'tracks', page: 'pages', screen: 'screens', identify: 'identifies', group: 'groups', alias: 'aliases' })[t]!;
  return { all: Object.fromEntries(rows.map(([t, n]) => [table(t), Number(n)])), named: Object.fromEntries(rows.filter(([, , m]) => m > 0n).map(([t, , m]) => [table(t), Number(m)])) };
}

async function lakeCounts(lake: string): Promise<{ all: Record<string, number>; named: number }> {
  const { storage, catalog } = openLocalLake(lake);
  const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
  try {
    const all: Record<string, number> = {};
    let named = 0;
    for (const t of q.tables) {
      all[t.name] = Number((await q.query(`SELECT count(*) FROM ${t.name}`)).rows[0]![0]);
      const prev = t.columns.some((c) => c.name === 'previous_id') ? ` OR previous_id IN ('${USER}', '${ANON}')` : '';
      named += Number((await q.query(`SELECT count(*) FROM ${t.name} WHERE user_id = '${USER}' OR anonymous_id = '${ANON}'${prev}`)).rows[0]![0]);
    }
    return { all, named };
  } finally {
    q.close();
  }
}

test('delete-users removes exactly the users\' rows (by the raw lines\' ground truth) and their dead letters; re-ingesting the input does not bring them back', async () => {
  const dir = tempDir('gdpr');
  const lake = `${dir}/lake`;
  const input = `${dir}/in.ndjson`;
  writeInput(input);
  const { storage, catalog } = openLocalLake(lake);
  await new Ingestor(storage, catalog, {}).run(new FileSource([input]));
  const t = await truth(input);
  const before = await lakeCounts(lake);
  assert.deepEqual(before.all, t.all, 'ingest holds the ground truth');
  const namedTotal = Object.values(t.named).reduce((a, b) => a + b, 0);
  assert.ok(namedTotal > 40 && Object.keys(t.named).length >= 3, 'the users have rows in several tables');
  assert.equal(before.named, namedTotal);

  const dry = await deleteUsers(storage, catalog, { userIds: [USER], anonymousIds: [ANON], dryRun: true });
  assert.deepEqual(dry.rows, t.named);
  assert.equal(dry.deadLetters, 1);
  assert.deepEqual((await lakeCounts(lake)).all, t.all, 'a dry run changes nothing');

  const done = await deleteUsers(storage, catalog, { userIds: [USER], anonymousIds: [ANON] });
  assert.deepEqual(done.rows, t.named);
  assert.equal(done.deadLetters, 1);
  assert.deepEqual(done.skipped, []);
  const after = await lakeCounts(lake);
  assert.equal(after.named, 0, 'no row names the users');
  assert.deepEqual(after.all, Object.fromEntries(Object.entries(t.all).map(([k, n]) => [k, n - (t.named[k] ?? 0)])), 'every other row is still there');
  // The replaced files are gone from storage (grace 0), not only from the catalog.
  const db = await (await DuckDBInstance.create(':memory:')).connect();
  const onDisk = Number((await db.runAndReadAll(`SELECT count(*) FROM read_parquet('${lake}/tracks/**/*.parquet', hive_partitioning=false) WHERE user_id = '${USER}' OR anonymous_id = '${ANON}'`)).getRows()[0]![0]);
  assert.equal(onDisk, 0, 'no Parquet file under the table holds their rows');
  const deadLetters = (await storage.list('_deadletter', { recursive: true })).map((o) => o.key);
  const dlText = (await Promise.all(deadLetters.map(async (k) => (await storage.get(k))!.toString()))).join('');
  assert.ok(!dlText.includes(USER), 'their dead letter is gone');
  assert.ok(dlText.includes('not json at all'), 'other dead letters stay');

  // verify sees exactly the deleted rows as missing, nothing extra.
  const v = await verifyLake(storage, catalog, new FileSource([input]));
  assert.equal(v.missing, namedTotal);
  assert.equal(v.extra, 0);

  // Re-ingesting the same input skips every position already committed: the rows stay deleted.
  const again = await new Ingestor(storage, catalog, {}).run(new FileSource([input]));
  assert.equal(again.written, 0);
  assert.equal((await lakeCounts(lake)).named, 0);
});

test('tributary delete-users: usage errors name what is wrong; --dry-run and --json', async () => {
  const dir = tempDir('gdpr-cli');
  const lake = `${dir}/lake`;
  const input = `${dir}/in.ndjson`;
  writeInput(input);
  assert.equal((await runCli(['ingest', '--lake', lake, input])).code, 0);
  const none = await runCli(['delete-users', '--lake', lake]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no ids given/);
  const empty = await runCli(['delete-users', '--lake', lake, '--user-id', '']);
  assert.equal(empty.code, 2);
  const ids = `${dir}/ids.txt`;
  writeFileSync(ids, `user:${USER}\nanonymous:${ANON}\n`);
  const dry = await runCli(['delete-users', '--lake', lake, '--ids-file', ids, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  const t = await truth(input);
  const total = Object.values(t.named).reduce((a, b) => a + b, 0);
  assert.match(dry.stdout, new RegExp(`would delete ${total} rows .* and 1 dead letters; nothing changed`));
  const run = await runCli(['delete-users', '--lake', lake, '--ids-file', ids, '--json']);
  assert.equal(run.code, 0, run.stderr);
  const r = JSON.parse(run.stdout);
  assert.deepEqual(r.rows, t.named);
  assert.equal((await lakeCounts(lake)).named, 0);
});
