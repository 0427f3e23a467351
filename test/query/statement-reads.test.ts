/** statementReads over DuckDB's own parse trees: the columns a SELECT names, and every construct that reads columns it does not name. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { statementReads } from '../../src/query/statement-reads.ts';
import { openDuckDB, sqlString } from '../../src/writer/duckdb.ts';

const { instance, conn } = await openDuckDB();
test.after(() => {
  conn.closeSync();
  instance.closeSync();
});

/** The reads of `sql`, or null where DuckDB cannot serialize it (LakeQuery then reads every column of every table). */
async function readsOrNull(sql: string) {
  const r = await conn.runAndReadAll(`SELECT json_serialize_sql(${sqlString(sql)})`);
  const tree = JSON.parse(String(r.getRows()[0]![0]));
  if (tree.error !== false) return null;
  const got = statementReads(tree);
  return { ...got, relations: got.relations.sort(), columns: got.columns.sort(), starred: got.starred.sort() };
}

async function reads(sql: string) {
  const r = await readsOrNull(sql);
  assert.ok(r !== null, `${sql} parses`);
  return r;
}

test('names: columns of every clause, qualified names, USING columns, lambdas; count(*) reads none', async () => {
  assert.deepEqual(await reads('SELECT count(*) FROM tracks'), { relations: ['tracks'], columns: [], starred: [], allColumns: false });
  assert.deepEqual(
    await reads(`SELECT t.event, count(DISTINCT "Anonymous_Id") FILTER (WHERE properties->>'$.x' = '1') FROM main.tracks AS t WHERE dt >= DATE '2026-01-01' GROUP BY 1 HAVING max(received_at) > now() ORDER BY min(user_id)`),
    { relations: ['tracks'], columns: ['anonymous_id', 'dt', 'event', 'properties', 'received_at', 't', 'user_id'], starred: [], allColumns: false },
  );
  assert.deepEqual(await reads('SELECT p.name FROM tracks JOIN pages p USING (anonymous_id)'), { relations: ['pages', 'tracks'], columns: ['anonymous_id', 'name', 'p'], starred: [], allColumns: false });
  assert.deepEqual(await reads('SELECT list_transform([1], x -> x + 1), event FROM tracks'), { relations: ['tracks'], columns: ['event', 'x'], starred: [], allColumns: false });
  assert.deepEqual(
    await reads('WITH v AS (SELECT event AS e FROM tracks) SELECT e, (SELECT max(name) FROM pages) FROM v'),
    { relations: ['pages', 'tracks', 'v'], columns: ['e', 'event', 'name'], starred: [], allColumns: false },
  );
  assert.deepEqual(await reads('SELECT e FROM (SELECT event FROM tracks) s(e)'), { relations: ['tracks'], columns: ['e', 'event'], starred: [], allColumns: false });
});

test('stars read every column of the tables in their own FROM clause, not through subqueries, CTEs or views', async () => {
  for (const sql of [
    'SELECT * FROM tracks',
    'FROM tracks',
    'SELECT * EXCLUDE (properties) FROM tracks',
    'SELECT t.* FROM tracks t',
    "SELECT COLUMNS('experiment_.*') FROM tracks",
    'SELECT count(*) FROM (SELECT * FROM tracks)',
    'SELECT * FROM tracks JOIN (SELECT 1) ON true',
  ]) {
    const r = await reads(sql);
    assert.deepEqual([r.starred, r.allColumns], [['tracks'], false], sql);
  }
  assert.deepEqual((await reads('SELECT * FROM (SELECT event FROM tracks)')).starred, []);
  assert.deepEqual((await reads('WITH v AS (SELECT event FROM tracks) SELECT * FROM v JOIN pages USING (anonymous_id)')).starred, ['pages', 'v']);
  assert.deepEqual((await reads('SELECT * FROM experiment_results')).starred, ['experiment_results']);
});

test('every column (or no parse tree at all): positional references, NATURAL JOIN, positional aliases, rows as values, PIVOT', async () => {
  for (const sql of [
    'SELECT #2 FROM tracks',
    'SELECT count(event) FROM tracks NATURAL JOIN pages',
    'SELECT a FROM tracks AS t(a)',
    'SELECT t FROM tracks t',
    'SELECT to_json(tracks) FROM tracks',
    'WITH w AS (SELECT event FROM tracks) SELECT w FROM w',
    'SELECT count(*) FROM (PIVOT tracks ON event USING count(*))',
    'SELECT e FROM tracks UNPIVOT (v FOR e IN (event, user_id))',
    'DESCRIBE tracks',
  ]) {
    const r = await readsOrNull(sql);
    assert.ok(r === null || r.allColumns, sql);
  }
});
