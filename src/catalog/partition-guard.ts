import { createHash, randomBytes } from 'node:crypto';
import type { Storage } from '../storage/storage.ts';
import { PROCESS_OWNER, acquireLease, heartbeat, isHeld, isLive, leaseBody } from './lease.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Keeps file commits and compaction swaps of one partition apart, through objects in storage
 * (`_tributary/guards/<table>/<partition hash>/`), so no file lands in a location while a compactor
 * is between listing it and swapping it away (DESIGN §5.5). Dekker-style: a writer first announces
 * itself (`w-…`), then looks for the compaction lock; a compactor first takes the lock, then waits
 * until no writer is announced. Whichever order they run in, one of them sees the other.
 */
export class PartitionGuard {
  constructor(private readonly storage: Storage) {}

  private dir(table: string, partKey: string): string {
    return `_tributary/guards/${table}/${createHash('sha1').update(partKey).digest('hex').slice(0, 20)}`;
  }

  /** True while a live compaction lock is held on the partition. */
  async isCompacting(table: string, partKey: string): Promise<boolean> {
    return isHeld(this.storage, `${this.dir(table, partKey)}/compact`);
  }

  /** Runs `fn` (a file commit into the partition) while no compaction of it is under way. */
  async write<T>(table: string, partKey: string, fn: () => Promise<T>): Promise<T> {
    const dir = this.dir(table, partKey);
    const me = `${dir}/w-${PROCESS_OWNER}-${randomBytes(4).toString('hex')}`;
    for (let wait = 20; ; wait = Math.min(wait * 2, 1000)) {
      await this.storage.put(me, leaseBody());
      if (!(await isHeld(this.storage, `${dir}/compact`))) break;
      await this.storage.delete([me]); // a compaction holds the partition: step back and retry
      await sleep(wait);
    }
    const beat = heartbeat(this.storage, me);
    try {
      return await fn();
    } finally {
      await beat.stop();
      await this.storage.delete([me]);
    }
  }

  /**
   * Takes the partition's compaction lock and waits for announced writers to finish; null when
   * another compaction holds it. Call the returned function to release.
   */
  async compact(table: string, partKey: string): Promise<(() => Promise<void>) | null> {
    const dir = this.dir(table, partKey);
    const release = await acquireLease(this.storage, `${dir}/compact`);
    if (release === null) return null;
    for (let wait = 10; ; wait = Math.min(wait * 2, 500)) {
      const writers = (await this.storage.list(dir)).filter((o) => /\/w-[^/]+$/.test(o.key));
      let busy = false;
      for (const w of writers) if (await isLive(this.storage, w.key)) busy = true;
      if (!busy) return release;
      await sleep(wait);
    }
  }
}
