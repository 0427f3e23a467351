import assert from 'node:assert/strict';
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../../src/errors.ts';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { EmbeddedCatalog } from '../../src/catalog/embedded-catalog.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { DEFAULT_CACHE_MAX_BYTES, defaultCacheDir, FileCache, type PartialPlanner } from '../../src/storage/file-cache.ts';
import { LocalStorage } from '../../src/storage/local-storage.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import { writeTestInput } from '../support/data.ts';
import { rerunWithOpenSslLegacyProviderIfNeeded, s3rverBucket } from '../support/s3rver.ts';
import { tempDir } from '../support/tmp.ts';

rerunWithOpenSslLegacyProviderIfNeeded(); // s3rver (in this process) needs DES for its listing tokens

async function s3(): Promise<S3Storage> {
  const { client, bucket } = await s3rverBucket();
  return new S3Storage({ bucket, client, prefix: 'lake' });
}

/** The object's listing entry (key, size, mtime, etag). */
async function listed(storage: S3Storage, key: string) {
  const o = (await storage.list(key.slice(0, key.lastIndexOf('/')))).find((x) => x.key === key);
  assert.ok(o, key);
  return o;
}

test('copies are keyed by ETag: a changed object at the same key is fetched again and the stale copy removed', async () => {
  const storage = await s3();
  const cache = new FileCache(storage, { dir: tempDir('fc-etag') });
  await storage.put('t/dt=2026-11-20/a.parquet', 'version one');
  const v1 = await listed(storage, 't/dt=2026-11-20/a.parquet');
  const lease = cache.lease();
  const [p1] = await lease.paths([v1]);
  assert.equal(readFileSync(p1!, 'utf8'), 'version one');
  assert.match(p1!, /[/\\]t[/\\]dt=2026-11-20[/\\]a\.parquet$/, 'the lease keeps the key path and name (Hive directories)');
  lease.release();
  assert.ok(!existsSync(p1!), 'release removes the lease links');
  const again = cache.lease();
  assert.equal(readFileSync((await again.paths([v1]))[0]!, 'utf8'), 'version one');
  again.release();
  assert.deepEqual([cache.stats.hits, cache.stats.misses, cache.stats.bytesFetched], [1, 1, 11]);

  // Same key, same size, new content: only the ETag tells them apart.
  await storage.put('t/dt=2026-11-20/a.parquet', 'version two');
  const v2 = await listed(storage, 't/dt=2026-11-20/a.parquet');
  assert.equal(v2.size, v1.size);
  assert.notEqual(v2.etag, v1.etag);
  const third = cache.lease();
  assert.equal(readFileSync((await third.paths([v2]))[0]!, 'utf8'), 'version two');
  third.release();
  assert.deepEqual([cache.stats.hits, cache.stats.misses, cache.stats.staleRemoved], [1, 2, 1]);
  assert.ok(!existsSync(cache.entryPath(v1)), 'the copy of the old version is gone');
  assert.ok(existsSync(cache.entryPath(v2)));
});

test('the size cap evicts the least recently used copies first, a hit counting as a use', async () => {
  const storage = await s3();
  const body = 'x'.repeat(1000);
  for (const k of ['a', 'b', 'c', 'd']) await storage.put(`t/${k}.parquet`, body);
  const objs = Object.fromEntries(await Promise.all(['a', 'b', 'c', 'd'].map(async (k) => [k, await listed(storage, `t/${k}.parquet`)] as const)));
  const dir = tempDir('fc-lru');
  // Files that are not the cache's own, in the directory it was pointed at: eviction never touches them.
  mkdirSync(`${dir}/photos`);
  writeFileSync(`${dir}/photos/old.jpg`, 'x'.repeat(5000));
  writeFileSync(`${dir}/notes.txt`, 'x'.repeat(5000));
  utimesSync(`${dir}/photos/old.jpg`, 1, 1);
  const cache = new FileCache(storage, { dir, maxBytes: 3000 });
  const fetch = async (...keys: string[]) => {
    const l = cache.lease();
    await l.paths(keys.map((k) => objs[k]!));
    l.release();
  };
  await fetch('a', 'b', 'c');
  // Give them distinct, old use times: a oldest, then b, then c.
  ['a', 'b', 'c'].forEach((k, i) => utimesSync(cache.entryPath(objs[k]!), 1_000 + i, 1_000 + i));
  await fetch('a'); // a hit: now the most recent
  assert.equal(cache.stats.hits, 1);
  await fetch('d'); // needs 1000 bytes: b (least recent) goes
  assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => existsSync(cache.entryPath(objs[k]!))), [true, false, true, true]);
  assert.deepEqual([cache.stats.evictedFiles, cache.stats.evictedBytes], [1, 1000]);
  assert.deepEqual(await cache.usage(), { files: 3, bytes: 3000 });
  assert.ok(existsSync(`${dir}/photos/old.jpg`) && existsSync(`${dir}/notes.txt`), 'foreign files stay');
});

test('a copy a lease holds is never evicted, whatever the cap; released, it goes first', async () => {
  const storage = await s3();
  for (const k of ['a', 'b', 'c']) await storage.put(`t/${k}.parquet`, `${k}`.repeat(500));
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((k) => listed(storage, `t/${k}.parquet`)));
  const cache = new FileCache(storage, { dir: tempDir('fc-pin'), maxBytes: 600 });
  const running = cache.lease();
  const [pa] = await running.paths([a!]);
  const other = cache.lease();
  const [pb] = await other.paths([b!]); // the cap cannot hold both, but a is in use
  assert.equal(readFileSync(pa!, 'utf8'), 'a'.repeat(500), 'the running reader still has its file');
  assert.ok(existsSync(cache.entryPath(a!)));
  assert.equal(readFileSync(pb!, 'utf8'), 'b'.repeat(500));
  assert.equal(cache.stats.evictedFiles, 0);
  running.release();
  other.release();
  const third = cache.lease();
  await third.paths([c!]);
  third.release();
  assert.equal(cache.stats.evictedFiles, 2, 'both released copies made room for c');
  assert.ok(existsSync(cache.entryPath(c!)));
});

test('a lease left behind by a dead process stops holding its copies at the next eviction', async () => {
  const storage = await s3();
  await storage.put('t/a.parquet', 'a'.repeat(800));
  await storage.put('t/b.parquet', 'b'.repeat(800));
  const [a, b] = await Promise.all([listed(storage, 't/a.parquet'), listed(storage, 't/b.parquet')]);
  const dir = tempDir('fc-dead');
  const cache = new FileCache(storage, { dir, maxBytes: 1000 });
  const l = cache.lease();
  await l.paths([a!]);
  l.release();
  // A lease of a process that no longer exists (pid far above the kernel's limit).
  const ghost = path.join(dir, '.leases', '99999999-abcdef', 'x');
  mkdirSync(ghost, { recursive: true });
  linkSync(cache.entryPath(a!), path.join(ghost, 'a.parquet'));
  assert.equal(statSync(cache.entryPath(a!)).nlink, 2);
  const l2 = cache.lease();
  await l2.paths([b!]);
  l2.release();
  assert.ok(!existsSync(path.join(dir, '.leases', '99999999-abcdef')), 'the dead lease was removed');
  assert.ok(!existsSync(cache.entryPath(a!)), 'and its copy evicted');
});

test('a query over an S3 lake reads through the cache: misses once, then hits; same answers', async () => {
  const dir = tempDir('fc-lake');
  const storage = await s3();
  const catalog = new EmbeddedCatalog(storage, 'tributary');
  const { files } = writeTestInput(dir, 1500, 81);
  await new Ingestor(storage, catalog, { targetFileBytes: 16 * 1024 }).run(new FileSource(files));
  const cache = new FileCache(storage, { dir: `${dir}/cache` });
  const sql = 'SELECT event, count(*) AS n FROM tracks GROUP BY 1 ORDER BY 1';
  const q1 = await LakeQuery.open(storage, catalog, { cache });
  const first = await q1.query(sql);
  q1.close();
  const files1 = cache.stats.misses;
  const trackFiles = await listCommittedFiles(storage, catalog, 'tracks');
  assert.equal(files1, trackFiles.length, 'the files of the table the query reads, no others');
  assert.ok(files1 > 1);
  assert.equal(cache.stats.hits, 0);
  const q2 = await LakeQuery.open(storage, catalog, { cache });
  assert.deepEqual(await q2.query(sql), first);
  q2.close();
  assert.deepEqual([cache.stats.hits, cache.stats.misses], [files1, files1]);
  assert.equal(cache.stats.bytesFetched, (await cache.usage()).bytes);
  const local = new FileCache(new LocalStorage(dir));
  assert.equal(local.inPlace, true);
});

test('options: dir and cap defaults come from the environment; bad values are refused', () => {
  const storage = new LocalStorage(tempDir('fc-opt'));
  assert.equal(new FileCache(storage, { env: { TRIBUTARY_CACHE: '/var/cache/t' } }).dir, '/var/cache/t');
  assert.equal(new FileCache(storage, { env: {} }).maxBytes, DEFAULT_CACHE_MAX_BYTES);
  assert.equal(new FileCache(storage, { env: { TRIBUTARY_CACHE_MAX_BYTES: '2GiB' } }).maxBytes, 2 * 1024 ** 3);
  assert.equal(new FileCache(storage, { maxBytes: '512MB' }).maxBytes, 512 * 1024 ** 2);
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x/cache' }), process.platform === 'linux' ? '/x/cache/tributary' : defaultCacheDir({ XDG_CACHE_HOME: '/x/cache' }));
  assert.throws(() => new FileCache(storage, { maxBytes: 'lots' }), (e: unknown) => e instanceof ConfigError && /--cache-max-bytes.*"lots"/.test(e.message));
  assert.throws(() => new FileCache(storage, { maxBytes: -1 }), ConfigError);
  assert.throws(() => new FileCache(storage, { dir: ' ' }), /cache directory/);
});

test('partial copies: only the planned ranges fetched, zeros elsewhere; grown by making them anew (old bytes reused); reused by the next lease; counted by blocks; evicted with their sidecar', async () => {
  const storage = await s3();
  const size = 1024 * 1024;
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = 1 + (i % 251);
  await storage.put('t/dt=2026-11-20/a.parquet', body);
  const o = await listed(storage, 't/dt=2026-11-20/a.parquet');
  // A plan over two named parts at fixed places (column-copies.ts plans from a Parquet footer).
  const at: Record<string, [number, number]> = { a: [0, 4096], b: [512 * 1024, 516 * 1024] };
  let planned = 0;
  const plan = (want: string[]): PartialPlanner => async () => {
    planned++;
    return { names: want, ranges: (names) => names.map((n) => at[n]!).sort((x, y) => x[0] - y[0]) };
  };
  const holds = (p: string, ranges: Array<[number, number]>) => {
    const got = readFileSync(p);
    assert.equal(got.length, size);
    for (let i = 0; i < size; i += 1024) {
      const inside = ranges.some(([s, e]) => s <= i && i < e);
      assert.equal(got[i], inside ? body[i] : 0, `byte ${i}`);
    }
  };
  const dir = tempDir('fc-partial');
  const cache = new FileCache(storage, { dir });
  const l1 = cache.lease();
  const [p1] = await l1.partialPaths([o], plan(['a']));
  assert.match(p1!, /[/\\]t[/\\]dt=2026-11-20[/\\]a\.parquet$/, 'the lease keeps the key path');
  holds(p1!, [at.a!]);
  assert.deepEqual([cache.stats.misses, cache.stats.bytesFetched], [1, 4096]);
  // More parts: the copy is made anew with both; only b's bytes are fetched; the first copy goes.
  const [p2] = await l1.partialPaths([o], plan(['b']));
  holds(p2!, [at.a!, at.b!]);
  assert.deepEqual([cache.stats.misses, cache.stats.bytesFetched], [2, 8192]);
  const copies = () => (existsSync(path.dirname(cache.entryPath(o))) ? readdirSync(path.dirname(cache.entryPath(o))) : []).sort();
  assert.equal(copies().length, 2, `one copy and its sidecar: ${copies()}`);
  assert.ok(copies()[1]!.endsWith('.parquet.parts') && copies()[0]!.endsWith('.parquet'));
  l1.release();
  // Another lease (another process's cache on the same directory) asking for a subset: nothing fetched.
  const other = new FileCache(storage, { dir });
  const l2 = other.lease();
  holds((await l2.partialPaths([o], plan(['a'])))[0]!, [at.a!, at.b!]);
  assert.deepEqual([other.stats.hits, other.stats.misses, other.stats.bytesFetched], [1, 0, 0]);
  // Counted by the blocks they use, not their size.
  const usage = await other.usage();
  assert.ok(usage.bytes >= 8192 && usage.bytes < 64 * 1024, `${usage.bytes} bytes counted for a sparse copy of ${size}`);
  // Held by a lease: never evicted; released: evicted, sidecar and all.
  const tight = new FileCache(storage, { dir, maxBytes: 0 });
  await tight.evict();
  assert.equal(copies().length, 2, 'a leased copy stays');
  l2.release();
  await tight.evict();
  assert.deepEqual(copies(), [], 'the copy and its sidecar went');
  // A whole copy, where there is one, serves a partial request without planning.
  const l3 = cache.lease();
  await l3.paths([o]);
  const before = planned;
  const [p3] = await l3.partialPaths([o], plan(['a', 'b']));
  assert.deepEqual(readFileSync(p3!), body);
  assert.equal(planned, before, 'no plan needed');
  l3.release();
  // A plan that wants the whole object gets it through the cache.
  const l4 = new FileCache(storage, { dir: tempDir('fc-partial-whole') }).lease();
  assert.deepEqual(readFileSync((await l4.partialPaths([o], async () => null))[0]!), body);
  l4.release();
});

test('a partial copy another process made meanwhile, holding parts this one lacks, is not removed as stale', async () => {
  const storage = await s3();
  const body = Buffer.alloc(1024 * 1024, 7);
  await storage.put('t/a.parquet', body);
  const o = await listed(storage, 't/a.parquet');
  const at: Record<string, [number, number]> = { a: [0, 4096], b: [8192, 12288] };
  const plan = (want: string[], meanwhile?: () => Promise<void>): PartialPlanner => async () => {
    await meanwhile?.(); // runs after this lease listed the copies there were
    return { names: want, ranges: (names) => names.map((n) => at[n]!).sort((x, y) => x[0] - y[0]) };
  };
  const dir = tempDir('fc-partial-race');
  const mine = new FileCache(storage, { dir });
  const theirs = new FileCache(storage, { dir });
  const theirLease = theirs.lease();
  const l = mine.lease();
  await l.partialPaths([o], plan(['a'], async () => {
    await theirLease.partialPaths([o], plan(['b']));
    theirLease.release(); // not held any more: only its parts keep it
  }));
  const parts = async (c: FileCache) => (await c.partials(o)).map((x) => x.names.join(',')).sort();
  assert.deepEqual(await parts(mine), ['a', 'b'], 'both copies stay: neither holds the other');
  l.release();
  // The next request for both makes one copy holding both, and both smaller ones go.
  const l2 = mine.lease();
  await l2.partialPaths([o], plan(['a', 'b']));
  l2.release();
  assert.deepEqual(await parts(mine), ['a,b']);
});

test('a part covers its pieces (`<name>@<sub>`): a copy of the whole part serves a piece; pieces grow into a copy with both; the whole part replaces them', async () => {
  const storage = await s3();
  const size = 1024 * 1024;
  const body = Buffer.alloc(size, 7);
  await storage.put('t/dt=2026-11-20/p.parquet', body);
  const o = await listed(storage, 't/dt=2026-11-20/p.parquet');
  // Part a is two pieces (a@0, a@1), as a column's chunks in two row groups.
  const at: Record<string, Array<[number, number]>> = { 'a@0': [[0, 4096]], 'a@1': [[512 * 1024, 516 * 1024]] };
  at.a = [...at['a@0']!, ...at['a@1']!];
  const plan = (want: string[]): PartialPlanner => async () => ({
    names: want,
    ranges: (names) => [...new Set(names.flatMap((n) => at[n]!.map((r) => r.join('-'))))].map((r) => r.split('-').map(Number) as [number, number]).sort((x, y) => x[0] - y[0]),
  });
  const cache = new FileCache(storage, { dir: tempDir('fc-pieces') });
  const parts = () =>
    readdirSync(path.dirname(cache.entryPath(o)))
      .filter((n) => n.endsWith('.parts'))
      .map((n) => (JSON.parse(readFileSync(path.join(path.dirname(cache.entryPath(o)), n), 'utf8')) as { names: string[] }).names);
  const l = cache.lease();
  await l.partialPaths([o], plan(['a@0']));
  await l.partialPaths([o], plan(['a@1']));
  assert.deepEqual(parts(), [['a@0', 'a@1']], 'pieces grow into one copy holding both');
  assert.equal(cache.stats.bytesFetched, 8192);
  await l.partialPaths([o], plan(['a']));
  assert.deepEqual(parts(), [['a']], 'the whole part replaces its pieces');
  const fetched = cache.stats.bytesFetched;
  const [p] = await l.partialPaths([o], plan(['a@1']));
  assert.deepEqual([parts(), cache.stats.bytesFetched], [[['a']], fetched], 'a piece is served by the whole part, nothing fetched');
  assert.deepEqual(readFileSync(p!).subarray(512 * 1024, 516 * 1024), body.subarray(512 * 1024, 516 * 1024));
  l.release();
});
