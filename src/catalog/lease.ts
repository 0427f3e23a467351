import { randomBytes } from 'node:crypto';
import type { Storage } from '../storage/storage.ts';

/**
 * How long a lease or marker counts without renewal: its holder renews it every third of that
 * while it works, so a holder that died holds it at most this long.
 */
export const LEASE_TTL_MS = 30_000;

interface LeaseBody {
  owner: string;
  expiresAtMs: number;
}

/** Who this process is, in lease bodies. */
export const PROCESS_OWNER = `${process.pid}-${randomBytes(4).toString('hex')}`;

/** A lease body valid for LEASE_TTL_MS from now. */
export function leaseBody(owner = PROCESS_OWNER): string {
  return JSON.stringify({ owner, expiresAtMs: Date.now() + LEASE_TTL_MS } satisfies LeaseBody);
}

/** True when `key` holds a lease or marker that has not expired. */
export async function isLive(storage: Storage, key: string): Promise<boolean> {
  const body = await storage.get(key);
  if (body === undefined) return false;
  try {
    return (JSON.parse(body.toString('utf8')) as LeaseBody).expiresAtMs > Date.now();
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
