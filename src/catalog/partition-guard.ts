import { createHash, randomBytes } from 'node:crypto';
import type { Storage } from '../storage/storage.ts';

/**
 * How long a writer's or a compactor's marker counts without being renewed: its owner renews it
 * every third of that while it works, so one that died holds the partition at most this long.
 */
export const MARKER_TTL_MS = 30_000;

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
      await this.storage.put(me, this.marker());
      if (!(await this.live(`${dir}/compact`))) break;
      await this.storage.delete([me]); // a compaction holds the partition: step back and retry
      await sleep(wait);
    }
    const beat = this.heartbeat(me);
    try {
      return await fn();
    } finally {
      await beat.stop();
      await this.storage.delete([me]);
    }
  }

  private marker(): string {
    return JSON.stringify({ owner: this.owner, expiresAtMs: Date.now() + MARKER_TTL_MS } satisfies Marker);
  }

  /** Renews `key` every third of the TTL until stopped. */
  private heartbeat(key: string): { stop(): Promise<void> } {
    let renewing: Promise<void> = Promise.resolve();
    const timer = setInterval(() => {
      renewing = renewing.then(() => this.storage.put(key, this.marker())).catch(() => undefined);
    }, MARKER_TTL_MS / 3);
    timer.unref();
    return {
      stop: async () => {
        clearInterval(timer);
        await renewing;
      },
    };
  }

  /**
   * Takes the partition's compaction lock and waits for announced writers to finish; null when
   * another compaction holds it. Call the returned function to release.
   */
  async compact(table: string, partKey: string): Promise<(() => Promise<void>) | null> {
    const dir = this.dir(table, partKey);
    const lock = `${dir}/compact`;
    const body = this.marker();
    if (!(await this.storage.putIfAbsent(lock, body))) {
      if (await this.live(lock)) return null;
      await this.storage.delete([lock]); // left by a compactor that died
      if (!(await this.storage.putIfAbsent(lock, body))) return null;
    }
    const beat = this.heartbeat(lock);
    const release = async () => {
      await beat.stop();
      await this.storage.delete([lock]);
    };
    for (let wait = 10; ; wait = Math.min(wait * 2, 500)) {
      const writers = (await this.storage.list(dir)).filter((o) => /\/w-[^/]+$/.test(o.key));
      let busy = false;
      for (const w of writers) if (await this.live(w.key)) busy = true;
      if (!busy) return release;
      await sleep(wait);
    }
  }
}
