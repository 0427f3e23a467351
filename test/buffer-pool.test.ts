import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool } from '../src/buffer-pool.ts';

test('take gives the smallest spare buffer that fits, else a new one of at least minBytes', () => {
  const pool = new BufferPool(4, 16);
  const a = new ArrayBuffer(64);
  const b = new ArrayBuffer(32);
  const c = new ArrayBuffer(128);
  pool.put(a);
  pool.put(b);
  pool.put(c);
  assert.equal(pool.take(20), b);
  assert.equal(pool.take(40), a);
  const fresh = pool.take(200);
  assert.ok(fresh !== c && fresh.byteLength === 200);
  assert.equal(pool.take(100), c);
  assert.equal(pool.size, 0);
  assert.equal(pool.take(1).byteLength, 16);
});

test('put keeps at most maxBuffers, dropping the smallest, and ignores detached, small and repeated buffers', () => {
  const pool = new BufferPool(2, 16);
  const small = new ArrayBuffer(8);
  pool.put(small);
  const detached = new ArrayBuffer(64);
  structuredClone(detached, { transfer: [detached] });
  assert.equal(detached.byteLength, 0);
  pool.put(detached);
  assert.equal(pool.size, 0);
  const x = new ArrayBuffer(32);
  pool.put(x);
  pool.put(x);
  assert.equal(pool.size, 1);
  const y = new ArrayBuffer(64);
  const z = new ArrayBuffer(48);
  pool.put(y);
  pool.put(z);
  assert.equal(pool.size, 2);
  assert.equal(pool.take(16), z); // x, the smallest, was dropped
  assert.equal(pool.take(16), y);
});

test('options are checked when the pool is made', () => {
  assert.throws(() => new BufferPool(-1, 16), /maxBuffers -1/);
  assert.throws(() => new BufferPool(2, 0), /minBytes 0/);
});
