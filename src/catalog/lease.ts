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

/** Renews `key` every third of the TTL until stopped. */
export function heartbeat(storage: Storage, key: string): { stop(): Promise<void> } {
  let renewing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    renewing = renewing.then(() => storage.put(key, leaseBody())).catch(() => undefined);
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
 * Takes the lease at `key` (exclusive create; an expired one is taken over) and keeps it renewed;
 * null when someone else holds it. Call the returned function to release it.
 */
export async function acquireLease(storage: Storage, key: string): Promise<(() => Promise<void>) | null> {
  if (!(await storage.putIfAbsent(key, leaseBody()))) {
    if (await isLive(storage, key)) return null;
    await storage.delete([key]); // left by a holder that died
    if (!(await storage.putIfAbsent(key, leaseBody()))) return null;
  }
  const beat = heartbeat(storage, key);
  return async () => {
    await beat.stop();
    await storage.delete([key]);
  };
}
