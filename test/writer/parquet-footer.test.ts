import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { StorageError } from '../../src/errors.ts';
import { LocalStorage } from '../../src/storage/local-storage.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { readParquetFooter, readParquetFooters } from '../../src/writer/parquet-footer.ts';
import { tempDir } from '../support/tmp.ts';

/** A storage that counts what is read through it. */
function counting(inner: Storage): Storage & { reads: number; bytes: number } {
  const c = Object.assign(Object.create(inner) as Storage, { reads: 0, bytes: 0 });
  c.get = async (k) => {
    const b = await inner.get(k);
    c.reads++;
    c.bytes += b?.length ?? 0;
    return b;
  };
  c.getRange = async (k, o, n) => {
    const b = await inner.getRange(k, o, n);
    c.reads++;
    c.bytes += b?.length ?? 0;
    return b;
  };
  c.download = undefined;
  return c;
}

test('readParquetFooter reads a footer by range reads (two for a footer over 64 KiB), never the file, and agrees with DuckDB', async () => {
  const dir = tempDir('footer');
  const db = await (await DuckDBInstance.create(':memory:')).connect();
  const big = 'x'.repeat(100_000); // a footer larger than the first read
  await db.run(`COPY (SELECT i, repeat(md5(i::VARCHAR), 8) AS s FROM range(200000) t(i)) TO '${dir}/a.parquet' (FORMAT parquet, KV_METADATA {small: 'v1', "tributary.ranges": '{"source":"file","ranges":{"s":["1","9"]}}', big: '${big}'})`);
  await db.run(`COPY (SELECT 1 AS i) TO '${dir}/b.parquet' (FORMAT parquet, KV_METADATA {k1: 'one'})`);
  const storage = counting(new LocalStorage(dir));
  const [a, b] = await storage.list('');
  assert.ok(a!.size > 2_000_000, 'a file of megabytes');
  const { kv, rows } = await readParquetFooter(storage, a!.key, a!.size);
  assert.equal(rows, 200000);
  const duck = new Map((await db.runAndReadAll(`SELECT decode(key), decode(value) FROM parquet_kv_metadata('${dir}/a.parquet')`)).getRows() as Array<[string, string]>);
  assert.deepEqual(new Map([...kv].filter(([k]) => duck.has(k))), duck, 'the same keys and values as DuckDB reads');
  assert.equal(kv.get('big'), big);
  assert.equal(storage.reads, 2);
  assert.ok(storage.bytes < 200_000, `read ${storage.bytes} bytes of ${a!.size}`);
  assert.equal((await readParquetFooter(storage, b!.key, b!.size)).kv.get('k1'), 'one', 'a file smaller than the first read');
  assert.deepEqual((await readParquetFooters(storage, [b!, a!, b!])).map((f) => f.rows), [1, 200000, 1], 'in the order asked');
  await storage.put('c.parquet', 'not parquet at all');
  await assert.rejects(readParquetFooter(storage, 'c.parquet', 18), (e: Error) => e instanceof StorageError && /c\.parquet is not a readable Parquet file/.test(e.message));
  await assert.rejects(readParquetFooter(storage, 'gone.parquet', 1000), (e: Error) => e instanceof StorageError && /gone\.parquet disappeared/.test(e.message));
});
