import { Worker } from 'node:worker_threads';
import { WriterError } from '../errors.ts';
import { workerUrl } from '../worker-code.ts';
import { Scratch, sortSpool, type SpoolSortJob, type SpoolSortResult } from './spool-sort.ts';

interface Queued {
  job: SpoolSortJob;
  resolve: (r: SpoolSortResult) => void;
  reject: (e: Error) => void;
}

/**
 * Sorts spools off the main thread (a 1 GB spool takes seconds of sorting and copying, which
 * must not stall reading and live queries). Up to `workers` worker threads, started on first use,
 * each run one sort at a time and keep their read buffer between sorts; spools under
 * `inlineBelowBytes` are sorted on the calling thread, where a round trip would cost more.
 */
export class SpoolSorter {
  private readonly idle: Worker[] = [];
  private readonly busy = new Map<Worker, Queued>();
  private readonly queue: Queued[] = [];
  private started = 0;
  private closed = false;

  /**
   * @param workers most sorts running at once (default 1).
   * @param inlineBelowBytes spools smaller than this are sorted inline (default 8 MiB).
   */
  constructor(
    private readonly workers = 1,
    private readonly inlineBelowBytes = 8 * 1024 * 1024,
  ) {}

  /** Writes the sorted copy `job.outPath` of a spool of `spoolBytes` bytes. */
  async sort(job: SpoolSortJob, spoolBytes: number): Promise<SpoolSortResult> {
    if (spoolBytes < this.inlineBelowBytes) return sortSpool(job, new Scratch());
    if (this.closed) throw new WriterError('the spool sorter is closed');
    return new Promise<SpoolSortResult>((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.dispatch();
    });
  }

  /** Starts the workers now (each takes a fraction of a second to load), so that the first sorts do not wait for them. */
  prestart(): void {
    while (!this.closed && this.started < this.workers) {
      const w = this.start();
      w.unref();
      this.idle.push(w);
    }
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let w = this.idle.pop();
      if (w === undefined && this.started < this.workers) w = this.start();
      if (w === undefined) return;
      const q = this.queue.shift()!;
      this.busy.set(w, q);
      w.ref();
      w.postMessage({ job: q.job });
    }
  }

  private start(): Worker {
    this.started++;
    const w = new Worker(workerUrl(new URL('./sort-worker.ts', import.meta.url), new URL('./sort-worker.mjs', import.meta.url)));
    w.on('message', (msg: { result?: SpoolSortResult; error?: string }) => {
      const q = this.busy.get(w);
      if (q === undefined) return;
      this.busy.delete(w);
      w.unref(); // an idle sorter does not keep the process alive
      this.idle.push(w);
      if (msg.error !== undefined) q.reject(new WriterError(msg.error));
      else q.resolve(msg.result!);
      this.dispatch();
    });
    w.on('error', (err) => this.lost(w, new WriterError(`spool sort worker crashed: ${err.message}`, { cause: err })));
    w.on('exit', (code) => this.lost(w, new WriterError(`spool sort worker exited with code ${code}`)));
    return w;
  }

  /** A worker died: its sort fails, and a later sort starts a fresh worker. */
  private lost(w: Worker, err: Error): void {
    const q = this.busy.get(w);
    const i = this.idle.indexOf(w);
    if (q === undefined && i < 0) return; // already accounted for
    if (i >= 0) this.idle.splice(i, 1);
    this.busy.delete(w);
    this.started--;
    q?.reject(err);
    if (!this.closed) this.dispatch();
  }

  /** Stops the workers; sorts queued or running are refused. */
  async close(): Promise<void> {
    this.closed = true;
    const err = new WriterError('the spool sorter is closed');
    for (const q of this.queue.splice(0)) q.reject(err);
    const all = [...this.idle, ...this.busy.keys()];
    for (const q of this.busy.values()) q.reject(err);
    this.idle.length = 0;
    this.busy.clear();
    this.started = 0;
    await Promise.all(all.map((w) => w.terminate()));
  }
}
