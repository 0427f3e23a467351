import { createHash, randomBytes } from 'node:crypto';
import type { Storage } from '../storage/storage.ts';

/** How long a writer's or a compactor's marker counts when its owner died without removing it. */
export const WRITER_MARKER_TTL_MS = 15 * 60_000;
export const COMPACTION_LOCK_TTL_MS = 60 * 60_000;

interface Marker {
  owner: string;
  expiresAtMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Keeps file commits and compaction swaps of one partition apart, through objects in storage
 * (`_tributary/guards/<table>/<partition hash>/`), so no file lands in a location while a compactor
 * is between listing it and swapping it away (DESIGN §5.5). Dekker-style: a writer first announces
 * itself (`w-…`), then looks for the compaction lock; a compactor first takes the lock, then waits
 * until no writer is announced. Whichever order they run in, one of them sees the other.
 */
export class PartitionGuard {
  private readonly owner = `${process.pid}-${randomBytes(4).toString('hex')}`;

  constructor(private readonly storage: Storage) {}

  private dir(table: string, partKey: string): string {
    return `_tributary/guards/${table}/${createHash('sha1').update(partKey).digest('hex').slice(0, 20)}`;
  }

  private async live(key: string): Promise<boolean> {
    const body = await this.storage.get(key);
    if (body === undefined) return false;
    try {
      return (JSON.parse(body.toString('utf8')) as Marker).expiresAtMs > Date.now();
    } catch {
      return true; // being written
    }
  }

  /** True while a live compaction lock is held on the partition. */
  async isCompacting(table: string, partKey: string): Promise<boolean> {
    return this.live(`${this.dir(table, partKey)}/compact`);
  }

  /** Runs `fn` (a file commit into the partition) while no compaction of it is under way. */
  async write<T>(table: string, partKey: string, fn: () => Promise<T>): Promise<T> {
    const dir = this.dir(table, partKey);
    const me = `${dir}/w-${this.owner}-${randomBytes(4).toString('hex')}`;
    for (let wait = 20; ; wait = Math.min(wait * 2, 1000)) {
      await this.storage.put(me, JSON.stringify({ owner: this.owner, expiresAtMs: Date.now() + WRITER_MARKER_TTL_MS } satisfies Marker));
      if (!(await this.live(`${dir}/compact`))) break;
      await this.storage.delete([me]); // a compaction holds the partition: step back and retry
      await sleep(wait);
    }
    try {
      return await fn();
    } finally {
      await this.storage.delete([me]);
    }
  }

  /**
   * Takes the partition's compaction lock and waits for announced writers to finish; null when
   * another compaction holds it. Call the returned function to release.
   */
  async compact(table: string, partKey: string): Promise<(() => Promise<void>) | null> {
    const dir = this.dir(table, partKey);
    const lock = `${dir}/compact`;
    const body = JSON.stringify({ owner: this.owner, expiresAtMs: Date.now() + COMPACTION_LOCK_TTL_MS } satisfies Marker);
    if (!(await this.storage.putIfAbsent(lock, body))) {
      if (await this.live(lock)) return null;
      await this.storage.delete([lock]); // left by a compactor that died
      if (!(await this.storage.putIfAbsent(lock, body))) return null;
    }
    const release = () => this.storage.delete([lock]);
    for (let wait = 10; ; wait = Math.min(wait * 2, 500)) {
      const writers = (await this.storage.list(dir)).filter((o) => /\/w-[^/]+$/.test(o.key));
      let busy = false;
      for (const w of writers) if (await this.live(w.key)) busy = true;
      if (!busy) return release;
      await sleep(wait);
    }
  }
}
