import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LeaseLostError } from '../../src/errors.ts';
import { ShardLeases } from '../../src/source/shard-leases.ts';
import { LocalStorage } from '../../src/storage/local-storage.ts';
import { tempDir } from '../support/tmp.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a free shard is taken by exactly one of many racing consumers', async () => {
  const storage = new LocalStorage(tempDir('lease'));
  const racers = Array.from({ length: 8 }, (_, i) => new ShardLeases(storage, 'leases', `c${i}`, 5_000));
  const won = await Promise.all(racers.map((l) => l.tryAcquire('shard-1')));
  assert.equal(won.filter((w) => w !== null).length, 1);
  const state = await racers[0]!.state('shard-1');
  assert.equal(state?.epoch, 1);
  assert.equal(state?.owner, racers[won.findIndex((w) => w !== null)]!.owner);
});

test('a live lease is not taken; an expired one is taken over by exactly one, and the old holder is fenced', async () => {
  const storage = new LocalStorage(tempDir('lease'));
  const a = new ShardLeases(storage, 'leases', 'a', 1_000);
  const held = await a.tryAcquire('s');
  assert.ok(held);
  const others = [new ShardLeases(storage, 'leases', 'b', 1_000), new ShardLeases(storage, 'leases', 'c', 1_000)];
  assert.deepEqual(await Promise.all(others.map((o) => o.tryAcquire('s'))), [null, null], 'live: nobody takes it');
  await a.fence(held); // trusted while fresh
  await sleep(1_100); // a stalls past its lease
  const taken = await Promise.all(others.map((o) => o.tryAcquire('s')));
  assert.equal(taken.filter((t) => t !== null).length, 1, 'one of the racers takes the expired lease');
  assert.equal(taken.find((t) => t !== null)!.epoch, 2);
  await assert.rejects(a.fence(held), LeaseLostError, 'the stale holder may not commit');
  await assert.rejects(a.renew(held), LeaseLostError, 'nor renew');
});

test('a holder stops trusting its lease a third of the timeout before it ends: the fence renews it, even past its expiry unless another consumer took it meanwhile', async () => {
  const storage = new LocalStorage(tempDir('lease'));
  const a = new ShardLeases(storage, 'leases', 'a', 1_500);
  const held = (await a.tryAcquire('s'))!;
  assert.equal(a.trusted(held), true);
  await sleep(1_050);
  assert.equal(a.trusted(held), false);
  await a.fence(held); // late but not expired: renewed on the spot
  assert.equal(a.trusted(held), true);
  await sleep(1_600); // expired, though nobody took it: claiming the next epoch keeps it
  await a.fence(held);
  assert.equal(held.epoch, 2);
  assert.equal(a.trusted(held), true);
  const b = new ShardLeases(storage, 'leases', 'b', 1_500);
  await sleep(1_600); // expired again, and this time another consumer takes it first
  assert.equal((await b.tryAcquire('s'))?.epoch, 3);
  await assert.rejects(a.fence(held), /another consumer took it over/);
});

test('renewal keeps a lease; release lets another consumer take it at once', async () => {
  const storage = new LocalStorage(tempDir('lease'));
  const a = new ShardLeases(storage, 'leases', 'a', 1_200);
  const b = new ShardLeases(storage, 'leases', 'b', 1_200);
  const held = (await a.tryAcquire('s'))!;
  for (let i = 0; i < 4; i++) {
    await sleep(400);
    await a.renew(held);
    assert.equal(await b.tryAcquire('s'), null, 'renewed: still held');
  }
  await a.release(held);
  const taken = await b.tryAcquire('s');
  assert.equal(taken?.epoch, 2);
  await assert.rejects(a.fence(held), LeaseLostError);
});
