import { Worker } from 'node:worker_threads';
import { TributaryError } from '../errors.ts';
import { workerUrl } from '../worker-code.ts';
import { Encoder, type EncodedBatch, type EncoderConfig, type EncoderInput } from './encoder.ts';

/** Consumed output buffers held for the workers. */
const MAX_SPARE = 8;

/**
 * Encodes inputs on worker threads (or inline with 0 workers). Results are returned in submission
 * order per worker, and submissions go round-robin, so awaiting them in submission order keeps the
 * input order the pipeline relies on.
 */
export class DecodePool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (b: EncodedBatch) => void; reject: (e: Error) => void }>();
  private readonly inline: Encoder | null;
  private next = 0;
  private seq = 0;
  private failed: Error | null = null;
  private closing = false;
  /** Output buffers consumed by the pipeline, to be handed back to the workers. */
  private readonly spare: ArrayBuffer[] = [];

  constructor(config: EncoderConfig, workers: number) {
    this.inline = workers === 0 ? new Encoder(config) : null;
    for (let i = 0; i < workers; i++) {
      const w = new Worker(workerUrl(new URL('./decode-worker.ts', import.meta.url), new URL('./decode-worker.mjs', import.meta.url)), { workerData: config });
      w.on('message', (msg: { id: number; out?: EncodedBatch; input?: Uint8Array; error?: string }) => {
        const p = this.pending.get(msg.id);
        if (p === undefined) return;
        this.pending.delete(msg.id);
        if (msg.error !== undefined) p.reject(new TributaryError(`decode worker failed: ${msg.error}`));
        else p.resolve({ ...msg.out!, input: msg.input });
      });
      w.on('error', (err) => this.fail(new TributaryError(`decode worker crashed: ${err.message}`, { cause: err })));
      w.on('exit', (code) => {
        if (code !== 0 && !this.closing) this.fail(new TributaryError(`decode worker exited with code ${code}`));
      });
      this.workers.push(w);
    }
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /**
   * Encodes `input`. An NDJSON input's byte buffer is transferred to the worker and comes back as the
   * result's `input` (do not touch it meanwhile); hand the result to `release` once it is consumed.
   */
  encode(input: EncoderInput): Promise<EncodedBatch> {
    if (this.inline !== null) return Promise.resolve({ ...this.inline.encode(input), input: input.kind === 'ndjson' ? input.bytes : undefined });
    if (this.failed !== null) return Promise.reject(this.failed);
    const id = this.seq++;
    const w = this.workers[this.next]!;
    this.next = (this.next + 1) % this.workers.length;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const reuse = this.spare.splice(0, 2);
      const transfer = input.kind === 'ndjson' ? [input.bytes.buffer as ArrayBuffer, ...reuse] : reuse;
      w.postMessage({ id, input, reuse }, transfer);
    });
  }

  /** Takes back a result whose groups have been consumed (appended to spools): its buffer is reused. */
  release(batch: EncodedBatch): void {
    if (batch.buffer === null || batch.buffer.byteLength === 0) return;
    if (this.inline !== null) this.inline.recycle([batch.buffer]);
    else if (this.spare.length < MAX_SPARE) this.spare.push(batch.buffer);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
