import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Storage } from '../../src/storage/storage.ts';

export interface ContractOptions {
  /**
   * False when the server under test ignores conditional writes (If-None-Match), so putIfAbsent cannot
   * work against it; only the putIfAbsent test is then skipped, with `skipReason` as its message, and
   * the implementation's own test file must cover putIfAbsent another way.
   */
  conditionalWrites?: boolean;
  skipReason?: string;
}

/** The contract every Storage implementation passes (run by each implementation's test file). */
export function storageContract(name: string, make: () => Promise<Storage>, options: ContractOptions = {}): void {
  test(`${name}: put/get round-trips bytes and text, replaces, and misses are undefined`, async () => {
    const s = await make();
    await s.put('a/b/c.bin', new Uint8Array([0, 1, 2, 255]));
    assert.deepEqual([...(await s.get('a/b/c.bin'))!], [0, 1, 2, 255]);
    await s.put('a/b/c.bin', 'text ☕');
    assert.equal((await s.get('a/b/c.bin'))!.toString('utf8'), 'text ☕');
    assert.equal(await s.get('a/b/missing'), undefined);
    assert.equal(await s.get('nope/x'), undefined);
  });

  test(`${name}: getRange reads a slice, fewer bytes at the end, none past it; a missing object is undefined; bad ranges are refused`, async () => {
    const s = await make();
    const body = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 251));
    await s.put('r/obj.bin', body);
    assert.deepEqual(await s.getRange('r/obj.bin', 0, 10), body.subarray(0, 10));
    assert.deepEqual(await s.getRange('r/obj.bin', 290, 64), body.subarray(290), 'fewer where the object ends');
    assert.deepEqual(await s.getRange('r/obj.bin', 123, 1), body.subarray(123, 124));
    assert.equal((await s.getRange('r/obj.bin', 300, 8))!.length, 0, 'none past the end');
    assert.equal(await s.getRange('r/missing.bin', 0, 8), undefined);
    await assert.rejects(s.getRange('r/obj.bin', -1, 8), /offset: -1 is not valid/);
    await assert.rejects(s.getRange('r/obj.bin', 0, 0), /length: 0 is not valid/);
  });

  const noConditionalWrites =
    options.conditionalWrites === false ? (options.skipReason ?? 'the server under test does not support conditional writes') : false;
  test(`${name}: putIfAbsent creates once`, { skip: noConditionalWrites }, async () => {
    const s = await make();
    assert.equal(await s.putIfAbsent('locks/one', 'first'), true);
    assert.equal(await s.putIfAbsent('locks/one', 'second'), false);
    assert.equal((await s.get('locks/one'))!.toString(), 'first');
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => s.putIfAbsent('locks/race', `w${i}`)));
    assert.equal(results.filter(Boolean).length, 1, 'exactly one concurrent creator wins');
  });

  test(`${name}: list is sorted, non-recursive by default, hides nothing itself`, async () => {
    const s = await make();
    await s.put('t/p=1/b.parquet', 'b');
    await s.put('t/p=1/a.parquet', 'aa');
    await s.put('t/p=1/sub/c.parquet', 'c');
    await s.put('t/p=10/d.parquet', 'd');
    const flat = await s.list('t/p=1');
    assert.deepEqual(flat.map((o) => o.key), ['t/p=1/a.parquet', 't/p=1/b.parquet']);
    assert.equal(flat[0]!.size, 2);
    assert.ok(flat[0]!.mtimeMs > 0);
    const deep = await s.list('t', { recursive: true });
    assert.deepEqual(deep.map((o) => o.key), ['t/p=1/a.parquet', 't/p=1/b.parquet', 't/p=1/sub/c.parquet', 't/p=10/d.parquet']);
    assert.deepEqual(await s.list('none'), []);
  });

  test(`${name}: list gives each object a version tag (etag) that changes when its content does`, async () => {
    const s = await make();
    await s.put('v/x', 'first');
    await s.put('v/y', 'first');
    const [x1, y1] = await s.list('v');
    assert.ok(typeof x1!.etag === 'string' && x1!.etag.length > 0, 'an etag');
    await s.put('v/x', 'second, longer');
    const [x2, y2] = await s.list('v');
    assert.notEqual(x2!.etag, x1!.etag, 'rewritten: a new etag');
    assert.equal(y2!.etag, y1!.etag, 'untouched: the same etag');
  });

  test(`${name}: delete removes and ignores missing keys`, async () => {
    const s = await make();
    await s.put('d/x', 'x');
    await s.put('d/y', 'y');
    await s.delete(['d/x', 'd/missing']);
    assert.deepEqual((await s.list('d')).map((o) => o.key), ['d/y']);
  });

  test(`${name}: copy (when implemented) duplicates an object under another key, names with + = % included`, async (t) => {
    const s = await make();
    if (s.copy === undefined) return t.skip('no copy(): callers fall back to get + put');
    await s.put('c/dt=2026-11-20/a%2Fb/file+x+1+2.parquet', 'data');
    await s.copy('c/dt=2026-11-20/a%2Fb/file+x+1+2.parquet', 'c/_g2/file+x+1+2.parquet');
    assert.equal((await s.get('c/_g2/file+x+1+2.parquet'))?.toString(), 'data');
    assert.equal((await s.get('c/dt=2026-11-20/a%2Fb/file+x+1+2.parquet'))?.toString(), 'data', 'the source stays');
    await assert.rejects(s.copy('c/missing', 'c/other'));
  });

  test(`${name}: keys cannot leave the root`, async () => {
    const s = await make();
    await assert.rejects(s.put('../escape', 'x'), /outside/);
    await assert.rejects(s.get('a/../../escape'), /outside/);
  });
}
