/**
 * Promoted property columns (tracks.experiment_name / variation_name): written equal to the JSON
 * they come from; over lakes written before they existed (files without the columns, a catalog
 * whose table lacks them, old files beside new ones) queries take them from the JSON, and the
 * experiment view stays exact.
 */
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import type { Catalog, TableDef } from '../../src/catalog/catalog.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { tempDir } from '../support/tmp.ts';

const PROMOTED = ['experiment_name', 'variation_name'];
/** Rows whose promoted columns differ from their JSON, and rows with an experiment name. */
const CHECK = `SELECT count(*) FILTER (WHERE experiment_name IS DISTINCT FROM json_extract_string(properties, '$.experimentName') OR variation_name IS DISTINCT FROM json_extract_string(properties, '$.variationName')),
  count(experiment_name) FROM tracks`;

async function experiments(q: LakeQuery): Promise<Record<string, number[]>> {
  const r = await q.query('SELECT * FROM experiment_results');
  const at = (n: string) => r.columns.indexOf(n);
  return Object.fromEntries(r.rows.map((row) => [`${row[at('experiment_name')]}|${row[at('variation_name')]}`, ['unique_views', 'total_views', 'unique_clicks', 'total_clicks'].map((c) => row[at(c)] as number)]));
}

/** The catalog as an older version left it: tracks registered without the promoted columns. */
function olderCatalog(inner: Catalog): Catalog {
  const strip = (t: TableDef | undefined) => t && { ...t, columns: t.columns.filter((c) => !PROMOTED.includes(c.name)) };
  return {
    database: inner.database,
    getTable: async (n) => strip(await inner.getTable(n)),
    listTables: async () => (await inner.listTables()).map((t) => strip(t)!),
    ensureTable: (d) => inner.ensureTable(d),
    getPartitions: (t) => inner.getPartitions(t),
    addPartitions: (t, p) => inner.addPartitions(t, p),
    swapPartitionLocation: (t, v, l, e) => inner.swapPartitionLocation(t, v, l, e),
    dropPartition: (t, v, e) => inner.dropPartition(t, v, e),
  };
}

test('promoted columns equal their JSON; experiment_results stays exact over files and catalogs without them', async () => {
  const dir = tempDir('promoted');
  const lines = [...sampleLines({ count: 6_000, seed: 31, invalidRate: 0.01, batchRate: 0.02 })];
  // A few experiment events whose keys are missing or not strings: NULL or JSON text, never lost.
  lines.push(JSON.stringify({ type: 'track', event: 'Experiment Viewed', anonymousId: 'odd-1', messageId: 'odd-1', properties: { experimentName: 7, variationName: 'A' } }));
  lines.push(JSON.stringify({ type: 'track', event: 'Experiment Viewed', anonymousId: 'odd-2', messageId: 'odd-2', properties: { variationName: 'B' } }));
  writeFileSync(`${dir}/in.ndjson`, lines.join('\n') + '\n');
  const moreLines = [...sampleLines({ count: 2_000, seed: 32 })];
  writeFileSync(`${dir}/more.ndjson`, moreLines.join('\n') + '\n');
  const expected = await expectedAnswers(lines, dir);
  const { storage, catalog } = openLocalLake(`${dir}/lake`);
  await new Ingestor(storage, catalog).run(new FileSource([`${dir}/in.ndjson`]));

  const q = await LakeQuery.open(storage, catalog);
  let bad: number | undefined;
  let filled: number | undefined;
  try {
    [[bad, filled]] = (await q.query(CHECK)).rows as number[][];
    assert.equal(bad, 0, 'every promoted value equals the JSON it came from');
    assert.ok(filled! > 1000, `the columns are filled (${filled})`);
    assert.deepEqual(await experiments(q), expected.experiments);
  } finally {
    q.close();
  }

  // A catalog registered by an older version: the view still binds and answers the same.
  const old = await LakeQuery.open(storage, olderCatalog(catalog));
  try {
    assert.deepEqual(await experiments(old), expected.experiments);
  } finally {
    old.close();
  }

  // Files written before the columns existed: rewritten without them, queries take them from the JSON.
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const files = await listCommittedFiles(storage, catalog, 'tracks');
  for (const f of files) {
    const p = storage.localPath(f.key)!;
    await conn.run(`COPY (SELECT * EXCLUDE (${PROMOTED.join(', ')}) FROM read_parquet('${p}')) TO '${p}.old' (FORMAT parquet)`);
    renameSync(`${p}.old`, p);
  }
  const cols = (await conn.runAndReadAll(`SELECT name FROM parquet_schema('${storage.localPath(files[0]!.key)}')`)).getRows().map((r) => r[0]);
  assert.ok(!cols.includes('experiment_name'), 'the rewritten files lack the columns');
  conn.closeSync();
  for (const c of [catalog, olderCatalog(catalog)]) {
    const q2 = await LakeQuery.open(storage, c);
    try {
      assert.deepEqual(await experiments(q2), expected.experiments);
      // Queries take the columns from the JSON there, the values the writer would have written.
      assert.deepEqual((await q2.query(CHECK)).rows, [[0, filled]]);
    } finally {
      q2.close();
    }
  }
  // Old and new files side by side: each read its own way, one answer.
  await new Ingestor(storage, catalog).run(new FileSource([`${dir}/more.ndjson`]));
  const more = await expectedAnswers([...lines, ...moreLines], dir);
  const files2 = await listCommittedFiles(storage, catalog, 'tracks');
  assert.ok(files2.length > files.length, 'new files beside the rewritten ones');
  const q3 = await LakeQuery.open(storage, catalog);
  try {
    assert.deepEqual(await experiments(q3), more.experiments);
    const [[bad3, filled3]] = (await q3.query(CHECK)).rows as number[][];
    assert.equal(bad3, 0);
    assert.ok(filled3! > filled!);
  } finally {
    q3.close();
  }
});
