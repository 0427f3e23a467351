import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { EmbeddedCatalog } from '../../src/catalog/embedded-catalog.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { AthenaEngine } from './athena-engine.ts';
import { startAthenaStandIn } from './athena-standin.ts';
import { writeTestInput } from './data.ts';
import type { Expected } from './ground-truth.ts';
import { s3rverBucket, s3rverEnv } from './s3rver.ts';
import { tempDir } from './tmp.ts';

/** More events (no fixed edge lines, whose message ids every writeTestInput repeats) in a file of their own. */
export function moreEvents(dir: string, name: string, count: number, seed: number): { files: string[]; lines: string[] } {
  mkdirSync(`${dir}/${name}`, { recursive: true });
  const lines = [...sampleLines({ count, seed, invalidRate: 0.02, batchRate: 0.03 })];
  writeFileSync(`${dir}/${name}/events.ndjson`, lines.join('\n') + '\n');
  return { files: [`${dir}/${name}/events.ndjson`], lines };
}

export async function fileCount(storage: Storage, catalog: Catalog): Promise<number> {
  let n = 0;
  for (const t of await catalog.listTables()) n += (await listCommittedFiles(storage, catalog, t.name)).length;
  return n;
}

/**
 * The test input split into `pieces` files, each ingested by a run of its own: every partition gets
 * about one small file per piece (a single run would write few, large ones).
 */
export async function ingestInPieces(storage: Storage, catalog: Catalog, dir: string, count: number, seed: number, pieces: number): Promise<{ files: string[]; lines: string[] }> {
  const { lines } = writeTestInput(dir, count, seed);
  const files: string[] = [];
  for (let i = 0; i < pieces; i++) {
    const f = `${dir}/piece-${i}.ndjson`;
    writeFileSync(f, lines.filter((_, n) => n % pieces === i).join('\n') + '\n');
    files.push(f);
    await new Ingestor(storage, catalog, { decodeWorkers: 0 }).run(new FileSource([f]));
  }
  return { files, lines };
}

/** Totals asked in process (fast): rows, distinct message ids, tracks per event. */
export async function quickAnswers(storage: Storage, catalog: Catalog): Promise<{ total: number; distinctIds: number; perEvent: Record<string, number> }> {
  const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
  try {
    const union = q.tables.map((t) => `SELECT message_id FROM ${t.name}`).join(' UNION ALL ');
    const [[total, distinctIds]] = (await q.query(`SELECT count(*), count(DISTINCT message_id) FROM (${union})`)).rows as [[number, number]];
    const perEvent = Object.fromEntries((await q.query('SELECT event, count(*) FROM tracks GROUP BY 1')).rows as Array<[string, number]>);
    return { total, distinctIds, perEvent };
  } finally {
    q.close();
  }
}

export function assertQuick(got: Awaited<ReturnType<typeof quickAnswers>>, expected: Expected): void {
  assert.equal(got.total, expected.valid, 'no event lost');
  assert.equal(got.distinctIds, got.total, 'no message_id twice');
  assert.deepEqual(got.perEvent, expected.perEvent);
}

/** An S3 lake in s3rver with the test input ingested in small files, and an Athena stand-in over it. */
export async function s3LakeWithAthena(label: string, count: number, seed: number, pieces: number) {
  const dir = tempDir(label);
  const { endpoint, bucket, client } = await s3rverBucket();
  const storage = new S3Storage({ bucket, prefix: 'lake', client });
  const catalog = new EmbeddedCatalog(storage, 'tributary');
  const input = await ingestInPieces(storage, catalog, dir, count, seed, pieces);
  const engine = new AthenaEngine({ bucketStorage: new S3Storage({ bucket, client }), bucket, lakePrefix: 'lake', catalog, lakeStorage: storage, database: 'tributary' });
  const standIn = await startAthenaStandIn({ execute: engine.execute, databases: ['tributary'] });
  const env: NodeJS.ProcessEnv = { ...s3rverEnv(endpoint, `${dir}/cache`), AWS_ENDPOINT_URL_ATHENA: standIn.endpoint };
  return { dir, bucket, client, storage, catalog, input, engine, standIn, env, lake: `s3://${bucket}/lake` };
}
