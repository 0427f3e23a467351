/**
 * Spare ArrayBuffers kept for reuse. Reusing buffers, rather than allocating one per batch, keeps
 * memory warm and spares V8 the collections that external-memory pressure starts.
 */
export class BufferPool {
  /** Spare buffers, smallest first. */
  private readonly spare: ArrayBuffer[] = [];

  /**
   * @param maxBuffers spare buffers kept at most; beyond it the smallest are dropped. Memory cost:
   *   up to maxBuffers of the largest buffers put back.
   * @param minBytes size of the smallest buffer made; smaller ones put back are not kept.
   */
  constructor(
    private readonly maxBuffers: number,
    private readonly minBytes: number,
  ) {
    if (!Number.isInteger(maxBuffers) || maxBuffers < 0) throw new RangeError(`BufferPool maxBuffers ${maxBuffers} must be an integer ≥ 0`);
    if (!Number.isInteger(minBytes) || minBytes < 1) throw new RangeError(`BufferPool minBytes ${minBytes} must be an integer ≥ 1`);
  }

  /** Buffers kept now. */
  get size(): number {
    return this.spare.length;
  }

  /**
   * Keeps `buffer` for a later take. A detached buffer (length 0), one below minBytes, or one already
   * kept is ignored: handing one buffer to two takers would let them write over each other.
   */
  put(buffer: ArrayBuffer): void {
    if (buffer.byteLength < this.minBytes || this.maxBuffers === 0 || this.spare.includes(buffer)) return;
    let i = this.spare.length;
    while (i > 0 && this.spare[i - 1]!.byteLength > buffer.byteLength) i--;
    this.spare.splice(i, 0, buffer);
    if (this.spare.length > this.maxBuffers) this.spare.shift();
  }

  /** A buffer of at least `bytes`: the smallest spare one that fits, else a new one of max(bytes, minBytes). */
  take(bytes: number): ArrayBuffer {
    const i = this.spare.findIndex((b) => b.byteLength >= bytes);
    if (i >= 0) return this.spare.splice(i, 1)[0]!;
    return new ArrayBuffer(Math.max(bytes, this.minBytes));
  }
}
