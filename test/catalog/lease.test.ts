import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { acquireLease, isLive } from '../../src/catalog/lease.ts';
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
  assert.equal(await isLive(storage, '_tributary/leases/job'), true);
  assert.equal(await acquireLease(storage, '_tributary/leases/job'), null, 'held by a live process');
  child.kill('SIGKILL');
  await once(child, 'exit');
  // The lease has not expired (30 s), but its holder is gone.
  const body = JSON.parse((await storage.get('_tributary/leases/job'))!.toString());
  assert.ok(body.expiresAtMs > Date.now() + 20_000);
  assert.equal(await isLive(storage, '_tributary/leases/job'), false);
  const release = await acquireLease(storage, '_tributary/leases/job');
  assert.notEqual(release, null);
  assert.equal(await isLive(storage, '_tributary/leases/job'), true, 'now held by this process');
  await release!();
  assert.equal(await storage.get('_tributary/leases/job'), undefined);
});

test('a lease from another machine (or PID namespace) is judged by its expiry alone', async () => {
  const storage = new LocalStorage(tempDir('lease2'));
  // pid 1 would not be checked anyway, so use a pid that surely does not exist here.
  await storage.put('l', JSON.stringify({ owner: 'x', expiresAtMs: Date.now() + 30_000, host: 'another-boot/pid:[1]', pid: 2 ** 22 + 1 }));
  assert.equal(await isLive(storage, 'l'), true);
  await storage.put('l', JSON.stringify({ owner: 'x', expiresAtMs: Date.now() - 1 }));
  assert.equal(await isLive(storage, 'l'), false);
});
