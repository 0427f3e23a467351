import { LeaseLostError } from '../errors.ts';
import type { Storage } from '../storage/storage.ts';

/** What a lease epoch file holds. */
interface LeaseBody {
  owner: string;
  /** Wall-clock expiry; 0 when released. */
  expiresAtMs: number;
}

/** A lease this process holds. */
export interface HeldLease {
  readonly shard: string;
  /** The epoch file this process holds; a renewal after a stall may move it to the next one. */
  epoch: number;
  /** Expiry written by the last successful renewal. */
  expiresAtMs: number;
}

/** Who holds a shard now, as read from storage. */
export interface LeaseState {
  epoch: number;
  owner: string;
  expiresAtMs: number;
}

const EPOCH = /\/(\d{10})\.json$/;
const epochName = (n: number) => `${String(n).padStart(10, '0')}.json`;

/**
 * Shard leases on the lake's storage, safe across processes with nothing but an exclusive create:
 * each take-over creates the next epoch file of the shard (`<prefix>/<shard>/<epoch>.json`), so of
 * two processes racing for an expired lease exactly one wins. The holder renews its epoch file in
 * place, and stops trusting its lease a third of the timeout before it ends: with the timeout
 * much longer than a renewal or a commit takes, a lease is held by at most one process at a time
 * (clocks assumed roughly in step, as with Kinesis Client Library leases).
 */
export class ShardLeases {
  /** Time a lease lasts without renewal, ms. */
  readonly ttlMs: number;

  constructor(
    private readonly storage: Storage,
    private readonly prefix: string,
    /** This process, as written in lease bodies. */
    readonly owner: string,
    ttlMs: number,
  ) {
    this.ttlMs = ttlMs;
  }

  private key(shard: string, epoch: number): string {
    return `${this.prefix}/${shard}/${epochName(epoch)}`;
  }

  private body(expiresAtMs: number): string {
    return JSON.stringify({ owner: this.owner, expiresAtMs } satisfies LeaseBody);
  }

  /** The newest epoch of `shard`'s lease, or null when nobody ever took it. */
  async state(shard: string): Promise<LeaseState | null> {
    let epoch = 0;
    for (const o of await this.storage.list(`${this.prefix}/${shard}`)) {
      const m = EPOCH.exec(o.key);
      if (m !== null) epoch = Math.max(epoch, Number(m[1]));
    }
    if (epoch === 0) return null;
    const raw = await this.storage.get(this.key(shard, epoch));
    if (raw === undefined) return null;
    try {
      const b = JSON.parse(raw.toString('utf8')) as LeaseBody;
      return { epoch, owner: b.owner, expiresAtMs: b.expiresAtMs };
    } catch {
      // Half-written (a local put is not atomic for readers on every platform): count it as live.
      return { epoch, owner: '?', expiresAtMs: Date.now() + this.ttlMs };
    }
  }

  /** True when `state` names a live holder. */
  static isLive(state: LeaseState | null, now = Date.now()): boolean {
    return state !== null && state.expiresAtMs > now;
  }

  /** Takes `shard` when nobody holds it (or its holder let it expire or released it); null otherwise. */
  async tryAcquire(shard: string, known?: LeaseState | null): Promise<HeldLease | null> {
    const cur = known === undefined ? await this.state(shard) : known;
    if (ShardLeases.isLive(cur)) return null;
    const epoch = (cur?.epoch ?? 0) + 1;
    const expiresAtMs = Date.now() + this.ttlMs;
    if (!(await this.storage.putIfAbsent(this.key(shard, epoch), this.body(expiresAtMs)))) return null;
    if (epoch > 2) await this.storage.delete([this.key(shard, epoch - 2)]).catch(() => undefined); // keep the last two
    return { shard, epoch, expiresAtMs };
  }

  /** True while this process may act on `lease` (a third of the timeout short of its expiry). */
  trusted(lease: HeldLease, now = Date.now()): boolean {
    return now < lease.expiresAtMs - this.ttlMs / 3;
  }

  /**
   * Renews `lease`. When it expired before the renewal landed (a stalled process), another consumer
   * may have taken it: this one then claims the next epoch itself, which succeeds only if nobody
   * else did, so nobody held the shard in between. Throws LeaseLostError when someone did.
   */
  async renew(lease: HeldLease): Promise<void> {
    const before = lease.expiresAtMs;
    if (Date.now() < before) {
      const next = Date.now() + this.ttlMs;
      await this.storage.put(this.key(lease.shard, lease.epoch), this.body(next));
      if (Date.now() < before) {
        if ((await this.storage.get(this.key(lease.shard, lease.epoch + 1))) !== undefined) throw this.lost(lease, 'another consumer took it over');
        lease.expiresAtMs = next;
        return;
      }
    }
    const next = Date.now() + this.ttlMs;
    if (!(await this.storage.putIfAbsent(this.key(lease.shard, lease.epoch + 1), this.body(next)))) {
      throw this.lost(lease, 'it expired while this process stalled, and another consumer took it over');
    }
    await this.storage.delete([this.key(lease.shard, lease.epoch - 1)]).catch(() => undefined);
    lease.epoch++;
    lease.expiresAtMs = next;
  }

  /**
   * Throws LeaseLostError unless `lease` is held and trusted: called before each commit. A lease
   * close to its end (a renewal ran late on a busy machine) is renewed here first, which is safe
   * while it has not expired.
   */
  async fence(lease: HeldLease): Promise<void> {
    if (!this.trusted(lease)) {
      await this.renew(lease);
      return;
    }
    if ((await this.storage.get(this.key(lease.shard, lease.epoch + 1))) !== undefined) throw this.lost(lease, 'another consumer took it over');
  }

  /** Gives `lease` up so another consumer can take it at once. */
  async release(lease: HeldLease): Promise<void> {
    lease.expiresAtMs = 0;
    await this.storage.put(this.key(lease.shard, lease.epoch), this.body(0));
  }

  private lost(lease: HeldLease, why: string): LeaseLostError {
    return new LeaseLostError(`lease of shard ${lease.shard} (epoch ${lease.epoch}) lost: ${why}`);
  }
}
