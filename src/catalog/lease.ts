import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import type { Storage } from '../storage/storage.ts';

/**
 * How long a lease or marker counts without renewal: its holder renews it every third of that
 * while it works, so a holder that died holds it at most this long.
 */
export const LEASE_TTL_MS = 30_000;

interface LeaseBody {
  owner: string;
  expiresAtMs: number;
  /** The holder's kernel boot and PID namespace (Linux): where `pid` means this process. */
  host?: string;
  pid?: number;
}

/** Who this process is, in lease bodies. */
export const PROCESS_OWNER = `${process.pid}-${randomBytes(4).toString('hex')}`;

/**
 * This kernel's boot id and this process's PID namespace, or null where /proc does not say (not
 * Linux). Two processes that share it see the same pids, so a holder found dead by its pid has
 * died; a holder anywhere else (another machine, container or boot) is judged by its expiry only.
 */
const LOCAL_PIDS: string | null = (() => {
  try {
    return `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}/${readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    return null;
  }
})();

/** A lease body valid for LEASE_TTL_MS from now. */
export function leaseBody(owner = PROCESS_OWNER): string {
  const body: LeaseBody = { owner, expiresAtMs: Date.now() + LEASE_TTL_MS };
  if (LOCAL_PIDS !== null) Object.assign(body, { host: LOCAL_PIDS, pid: process.pid });
  return JSON.stringify(body);
}

/** False only when process `pid` of this PID namespace does not exist. */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH'; // EPERM: it exists, owned by another user
  }
}

/** True when `key` holds a lease or marker that has not expired and whose holder is not known to be dead. */
export async function isLive(storage: Storage, key: string): Promise<boolean> {
  const body = await storage.get(key);
  if (body === undefined) return false;
  try {
    const b = JSON.parse(body.toString('utf8')) as LeaseBody;
    if (!(b.expiresAtMs > Date.now())) return false;
    // A holder killed on this machine (kill -9, a crash) frees its lease now, not when it expires.
    return !(LOCAL_PIDS !== null && b.host === LOCAL_PIDS && typeof b.pid === 'number' && !processExists(b.pid));
  } catch {
    return true; // being written
  }
}

/** Renews `key` every third of the TTL until stopped, or until `superseded` says another holder took over. */
export function heartbeat(storage: Storage, key: string, superseded?: () => Promise<boolean>): { stop(): Promise<void> } {
  let renewing: Promise<void> = Promise.resolve();
  let lost = false;
  const timer = setInterval(() => {
    renewing = renewing
      .then(async () => {
        // A holder that stalled past its expiry and was taken over must not bring its lease back to life.
        if (lost || (superseded !== undefined && (await superseded()))) {
          lost = true;
          return;
        }
        await storage.put(key, leaseBody());
      })
      .catch(() => undefined);
  }, LEASE_TTL_MS / 3);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await renewing;
    },
  };
}

/**
 * The objects of the lease named `key`: `<key>@<epoch>` (and `<key>` itself, as versions before
 * epochs wrote it), newest epoch last.
 */
async function leaseObjects(storage: Storage, key: string): Promise<Array<{ key: string; epoch: number }>> {
  const slash = key.lastIndexOf('/');
  const found: Array<{ key: string; epoch: number }> = [];
  for (const o of await storage.list(slash < 0 ? '' : key.slice(0, slash))) {
    if (o.key === key) found.push({ key, epoch: 0 });
    else if (o.key.startsWith(key + '@') && /^\d+$/.test(o.key.slice(key.length + 1))) found.push({ key: o.key, epoch: Number(o.key.slice(key.length + 1)) });
  }
  return found.sort((a, b) => a.epoch - b.epoch);
}

/** True while someone holds the lease named `key` (see acquireLease). */
export async function isHeld(storage: Storage, key: string): Promise<boolean> {
  for (const o of await leaseObjects(storage, key)) if (await isLive(storage, o.key)) return true;
  return false;
}

/**
 * Takes the lease named `key` and keeps it renewed; null when someone else holds it. Call the
 * returned function to release it.
 *
 * Each holder creates the next epoch's object (`<key>@<n+1>`, an exclusive create), so of two
 * processes that find the lease free (expired, released, or its holder dead) at the same instant,
 * exactly one takes it: deleting a dead holder's object and creating it again would let both.
 * Releasing leaves the object marked expired, so epochs never go back.
 */
export async function acquireLease(storage: Storage, key: string): Promise<(() => Promise<void>) | null> {
  const found = await leaseObjects(storage, key);
  for (const o of found) if (await isLive(storage, o.key)) return null;
  const epoch = (found.at(-1)?.epoch ?? 0) + 1;
  const mine = `${key}@${epoch}`;
  if (!(await storage.putIfAbsent(mine, leaseBody()))) return null; // another process took it first
  // A listing taken while another process took the lease and pruned behind it can miss both the
  // pruned object and the new one (a local listing is not a snapshot), and so name an epoch long
  // gone: a newer epoch in a second listing means someone else holds the lease.
  const after = await leaseObjects(storage, key);
  if (after.some((o) => o.epoch > epoch)) {
    await storage.delete([mine]);
    return null;
  }
  // Epochs before the previous one are pruned; the previous one stays, so a listing racing this
  // acquisition still sees an epoch at least as new as the one it could otherwise take again.
  const stale = after.filter((o) => o.epoch < epoch - 1).map((o) => o.key);
  if (stale.length > 0) await storage.delete(stale).catch(() => undefined);
  const next = `${key}@${epoch + 1}`;
  const beat = heartbeat(storage, mine, async () => (await storage.get(next)) !== undefined);
  return async () => {
    await beat.stop();
    if ((await storage.get(next)) === undefined) await storage.put(mine, JSON.stringify({ owner: PROCESS_OWNER, expiresAtMs: 0 }));
  };
}
