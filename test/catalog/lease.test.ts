import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { acquireLease, isHeld, isLive } from '../../src/catalog/lease.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { LocalStorage } from '../../src/storage/local-storage.ts';
import { tempDir } from '../support/tmp.ts';

/** A child process that takes the lease at `key` in `root`, says so, then waits to be killed. */
async function holder(root: string, key: string) {
  const code = `
    import { acquireLease } from ${JSON.stringify(new URL('../../src/catalog/lease.ts', import.meta.url).href)};
    import { LocalStorage } from ${JSON.stringify(new URL('../../src/storage/local-storage.ts', import.meta.url).href)};
    const release = await acquireLease(new LocalStorage(${JSON.stringify(root)}), ${JSON.stringify(key)});
    process.stdout.write(release === null ? 'refused\\n' : 'held\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  assert.equal(line.toString().trim(), 'held');
  return child;
}

test('a lease whose holder was killed on this machine is free at once; a live holder keeps it', { skip: process.platform !== 'linux' && 'pids are checked where /proc names the PID namespace' }, async () => {
  const root = tempDir('lease');
  const storage = new LocalStorage(root);
  const child = await holder(root, '_tributary/leases/job');
  assert.equal(await isHeld(storage, '_tributary/leases/job'), true);
  assert.equal(await acquireLease(storage, '_tributary/leases/job'), null, 'held by a live process');
  child.kill('SIGKILL');
  await once(child, 'exit');
  // The lease has not expired (30 s), but its holder is gone.
  const body = JSON.parse((await storage.get('_tributary/leases/job@1'))!.toString());
  assert.ok(body.expiresAtMs > Date.now() + 20_000);
  assert.equal(await isHeld(storage, '_tributary/leases/job'), false);
  const release = await acquireLease(storage, '_tributary/leases/job');
  assert.notEqual(release, null);
  assert.equal(await isHeld(storage, '_tributary/leases/job'), true, 'now held by this process');
  assert.deepEqual((await storage.list('_tributary/leases')).map((o) => o.key), ['_tributary/leases/job@1', '_tributary/leases/job@2'], 'the previous epoch is kept, none before it');
  await release!();
  assert.equal(await isHeld(storage, '_tributary/leases/job'), false);
  assert.notEqual(await storage.get('_tributary/leases/job@2'), undefined, 'released: kept, marked expired, so epochs never go back');
});

/** Storage whose every call waits a random few milliseconds first, so concurrent callers interleave in many orders. */
function jittery(storage: Storage): Storage {
  const wait = () => new Promise((r) => setTimeout(r, Math.random() * 8));
  return new Proxy(storage, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        await wait();
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

test('of processes that find a dead lease at the same instant, exactly one takes it', async () => {
  const storage = jittery(new LocalStorage(tempDir('lease-race')));
  const dead = JSON.stringify({ owner: 'gone', expiresAtMs: Date.now() - 1 });
  for (let round = 0; round < 20; round++) {
    const key = `_tributary/leases/r${round}`;
    await storage.put(round % 2 === 0 ? `${key}@3` : key, dead); // an expired epoch, or a lease written before epochs
    const takers = await Promise.all(Array.from({ length: 6 }, () => acquireLease(storage, key)));
    assert.equal(takers.filter((t) => t !== null).length, 1, `round ${round}: one holder`);
    assert.equal(await isHeld(storage, key), true);
    for (const t of takers) await t?.();
    assert.equal(await isHeld(storage, key), false);
  }
});

test('a holder taken over after stalling past its expiry neither revives nor releases the new holder\'s lease', async () => {
  const storage = new LocalStorage(tempDir('lease-stall'));
  const first = await acquireLease(storage, 'l');
  assert.notEqual(first, null);
  // The first holder stalls: its lease expires and a second process takes it over.
  await storage.put('l@1', JSON.stringify({ owner: 'stalled', expiresAtMs: Date.now() - 1 }));
  const second = await acquireLease(storage, 'l');
  assert.notEqual(second, null);
  const taken = (await storage.get('l@1'))!.toString();
  await first!(); // the stalled holder wakes up and releases
  assert.equal((await storage.get('l@1'))!.toString(), taken, 'the stalled holder wrote nothing back');
  assert.equal(await isHeld(storage, 'l'), true, 'the second holder still holds it');
  assert.equal(await acquireLease(storage, 'l'), null);
  await second!();
  assert.equal(await isHeld(storage, 'l'), false);
});

test('a listing that missed the current holder (taken while the lease changed hands) does not lead to a second holder', async () => {
  const base = new LocalStorage(tempDir('lease-list'));
  for (let i = 0; i < 3; i++) await (await acquireLease(base, 'l'))!(); // epochs 1..3, released
  const holder = await acquireLease(base, 'l'); // epoch 4, held
  assert.notEqual(holder, null);
  // A local listing is not a snapshot: one racing a takeover can see neither the pruned object nor the new one.
  let lists = 0;
  const racing = new Proxy(base, {
    get(target, prop, receiver) {
      if (prop === 'list') return async (prefix: string, o?: { recursive?: boolean }) => (lists++ === 0 ? [] : target.list(prefix, o));
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  assert.equal(await acquireLease(racing, 'l'), null, 'the second listing shows the newer epoch: someone holds it');
  assert.equal(await base.get('l@1'), undefined, 'the epoch taken on the stale listing was given back');
  assert.equal(await isHeld(base, 'l'), true);
  await holder!();
  assert.equal(await isHeld(base, 'l'), false);
});

test('a live lease written before epochs is respected', async () => {
  const storage = new LocalStorage(tempDir('lease-legacy'));
  await storage.put('l', JSON.stringify({ owner: 'old', expiresAtMs: Date.now() + 30_000 }));
  assert.equal(await isHeld(storage, 'l'), true);
  assert.equal(await acquireLease(storage, 'l'), null);
});

test('a lease from another machine (or PID namespace) is judged by its expiry alone', async () => {
  const storage = new LocalStorage(tempDir('lease2'));
  // pid 1 would not be checked anyway, so use a pid that surely does not exist here.
  await storage.put('l', JSON.stringify({ owner: 'x', expiresAtMs: Date.now() + 30_000, host: 'another-boot/pid:[1]', pid: 2 ** 22 + 1 }));
  assert.equal(await isLive(storage, 'l'), true);
  await storage.put('l', JSON.stringify({ owner: 'x', expiresAtMs: Date.now() - 1 }));
  assert.equal(await isLive(storage, 'l'), false);
});
