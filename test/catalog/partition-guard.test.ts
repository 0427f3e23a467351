import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PartitionGuard } from '../../src/catalog/partition-guard.ts';
import { LocalStorage } from '../../src/storage/local-storage.ts';
import { tempDir } from '../support/tmp.ts';

test('a writer waits while a compaction holds the partition, and goes on once it is released', async () => {
  const storage = new LocalStorage(tempDir('guard'));
  const g = new PartitionGuard(storage);
  const release = await g.compact('t', 'p1');
  assert.ok(release);
  assert.equal(await g.compact('t', 'p1'), null, 'a second compaction is refused');
  const order: string[] = [];
  const writing = g.write('t', 'p1', async () => void order.push('write'));
  await new Promise((r) => setTimeout(r, 200));
  order.push('release');
  await release!();
  await writing;
  assert.deepEqual(order, ['release', 'write']);
  assert.ok(await g.write('t', 'p2', async () => true), 'other partitions are not held');
});

test('a compaction waits for a writer that announced itself first', async () => {
  const storage = new LocalStorage(tempDir('guard'));
  const g = new PartitionGuard(storage);
  const order: string[] = [];
  let finish!: () => void;
  const writing = g.write('t', 'p', () => new Promise<void>((r) => (finish = () => { order.push('write done'); r(); })));
  await new Promise((r) => setTimeout(r, 50));
  const compacting = g.compact('t', 'p').then((rel) => { order.push('compaction starts'); return rel; });
  await new Promise((r) => setTimeout(r, 200));
  finish();
  await writing;
  const rel = await compacting;
  await rel!();
  assert.deepEqual(order, ['write done', 'compaction starts']);
});

test('locks and markers left by dead processes expire', async () => {
  const storage = new LocalStorage(tempDir('guard'));
  const g = new PartitionGuard(storage);
  const dead = JSON.stringify({ owner: 'gone', expiresAtMs: Date.now() - 1 });
  const rel = await g.compact('t', 'warmup');
  await rel!();
  const left = await storage.list('_tributary/guards/t', { recursive: true });
  assert.equal(left.length, 1, 'a released lock leaves only itself, marked expired');
  assert.equal(await g.isCompacting('t', 'warmup'), false);
  // Plant a dead compactor's lock and a dead writer's marker on partition p.
  const probe = await g.compact('t', 'p');
  const lockKey = (await storage.list('_tributary/guards/t', { recursive: true })).find((o) => !left.some((l) => l.key === o.key) && /\/compact@\d+$/.test(o.key))!.key;
  await probe!();
  await storage.put(lockKey, dead);
  await storage.put(lockKey.replace(/compact@\d+$/, 'w-dead'), dead);
  assert.equal(await g.isCompacting('t', 'p'), false);
  assert.equal(await g.write('t', 'p', async () => 'wrote'), 'wrote');
  const again = await g.compact('t', 'p');
  assert.ok(again, 'the dead lock is taken over');
  await again!();
});
