/**
 * LakeQuery binds tables lazily (only those a statement reads get their files); a table a statement
 * reads without naming it in its parse tree — named in a string, as query_table('tracks') or
 * query('SELECT … FROM tracks') do — is bound when read, never answered from its empty placeholder.
 * Answers are compared with counts taken from the raw input by the test's own oracle.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { before, test } from 'node:test';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake, type Lake } from '../../src/lake.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { oracleEvents } from '../support/ground-truth.ts';
import { tempDir } from '../support/tmp.ts';

const dir = tempDir('lake-query');
let lake: Lake;
/** Valid events per Segment type, from the raw lines. */
const perType: Record<string, number> = {};

before(async () => {
  const lines = [...sampleLines({ count: 20_000, seed: 7, invalidRate: 0.01 })];
  for (const l of lines) for (const { valid, event } of oracleEvents(l)) if (valid) perType[event!.type as string] = (perType[event!.type as string] ?? 0) + 1;
  writeFileSync(`${dir}/in.ndjson`, lines.join('\n') + '\n');
  lake = openLocalLake(`${dir}/lake`);
  await new Ingestor(lake.storage, lake.catalog).run(new FileSource([`${dir}/in.ndjson`]));
});

/** The one value `sql` answers, from a LakeQuery that has bound nothing before it. */
async function single(sql: string): Promise<unknown> {
  const q = await LakeQuery.open(lake.storage, lake.catalog);
  try {
    const r = await q.query(sql);
    assert.equal(r.rows.length, 1, sql);
    return r.rows[0]![0];
  } finally {
    q.close();
  }
}

test('a table named only in a string (query_table, query) is read whole, not as an empty placeholder', async () => {
  assert.ok(perType.track! > 1000 && perType.page! > 100 && perType.identify! > 100 && perType.group! > 10, JSON.stringify(perType));
  assert.equal(await single("SELECT count(*) FROM query_table('tracks')"), perType.track);
  assert.equal(await single("SELECT count(*) FROM query_table(['tracks', 'pages'], true)"), perType.track! + perType.page!);
  assert.equal(await single("FROM query('SELECT count(*) FROM identifies')"), perType.identify);
  // One table seen by the parse tree, one only in a string.
  assert.equal(await single("SELECT (SELECT count(*) FROM tracks) + (SELECT count(*) FROM query_table('groups'))"), perType.track! + perType.group!);
  // Columns too: the table named in a string exposes all of them.
  assert.equal(await single("SELECT count(DISTINCT message_id) FROM query_table('tracks') WHERE event IS NOT NULL"), perType.track);
});

test('a table no statement has bound still has its columns, and reading no row of it reads nothing', async () => {
  const q = await LakeQuery.open(lake.storage, lake.catalog);
  try {
    const d = await q.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'pages' ORDER BY ordinal_position");
    assert.ok(d.rows.length > 10 && d.rows.some((r) => r[0] === 'message_id'), JSON.stringify(d.rows));
    assert.deepEqual((await q.query("SELECT * FROM query_table('screens') LIMIT 0")).rows, []);
    // Once bound by a string, the table answers as when named.
    assert.equal((await q.query("SELECT count(*) FROM query_table('pages')")).rows[0]![0], perType.page);
    assert.equal((await q.query('SELECT count(*) FROM pages')).rows[0]![0], perType.page);
  } finally {
    q.close();
  }
});
