/**
 * A bounded many-producer, one-consumer queue: `push` waits while it is full (backpressure by
 * construction), `pop` waits while it is empty. `fail` makes the next pop throw; `close` ends it.
 */
export class AsyncQueue<T> {
  private readonly items: T[] = [];
  private readonly takers: Array<(v: IteratorResult<T>) => void> = [];
  private readonly rejecters: Array<(e: unknown) => void> = [];
  private readonly space: Array<() => void> = [];
  private closed = false;
  private error: unknown = undefined;

  constructor(private readonly capacity: number) {}

  /** Items waiting. */
  get size(): number {
    return this.items.length;
  }

  /** Adds `item`, waiting for room; dropped when the queue has ended. */
  async push(item: T): Promise<void> {
    while (this.items.length >= this.capacity && !this.closed) await new Promise<void>((r) => this.space.push(r));
    if (this.closed) return;
    const taker = this.takers.shift();
    this.rejecters.shift();
    if (taker !== undefined) taker({ value: item, done: false });
    else this.items.push(item);
  }

  /** The next item; done once closed and drained; throws what `fail` was given. */
  pop(): Promise<IteratorResult<T>> {
    if (this.error !== undefined) return Promise.reject(this.error);
    const item = this.items.shift();
    if (item !== undefined) {
      this.space.shift()?.();
      return Promise.resolve({ value: item, done: false });
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.takers.push(resolve);
      this.rejecters.push(reject);
    });
  }

  /** Ends the queue: waiting pops see done, waiting pushes return. */
  close(): void {
    this.closed = true;
    for (const t of this.takers.splice(0)) t({ value: undefined, done: true });
    this.rejecters.length = 0;
    for (const s of this.space.splice(0)) s();
  }

  /** Makes every pop from now on throw `err` (the first error wins). */
  fail(err: unknown): void {
    if (this.error !== undefined) return;
    this.error = err;
    this.takers.length = 0;
    for (const r of this.rejecters.splice(0)) r(err);
    this.close();
  }
}
