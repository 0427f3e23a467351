import { LeaseLostError } from '../errors.ts';
import { KinesisSource, type KinesisSourceOptions } from '../source/kinesis-source.ts';
import type { Ingestor, IngestStats } from './ingestor.ts';

/**
 * Consumes a Kinesis stream into the lake through `ingestor` until `signal` (the one given to the
 * ingestor's options) aborts. When a shard lease is lost (this process stalled past the lease
 * timeout) the run's uncommitted rows are thrown away and a new run starts from the checkpoints:
 * replays are skipped by the committed high-water marks, so nothing is lost or doubled.
 * Resolves with the counts summed over the runs.
 */
export async function consumeKinesis(ingestor: Ingestor, source: KinesisSourceOptions, signal?: AbortSignal): Promise<IngestStats> {
  const total: IngestStats = { read: 0, written: 0, deadLettered: 0, skipped: 0, files: 0, bytes: 0, seconds: 0, inputBytes: 0, inputTotalBytes: null };
  const started = Date.now();
  for (;;) {
    const src = new KinesisSource(source);
    let stats: IngestStats | null = null;
    try {
      stats = await ingestor.run(src);
    } catch (err) {
      if (!(err instanceof LeaseLostError)) throw err;
      source.onLog?.(`kinesis ${source.stream}: ${err.message}; uncommitted rows dropped, restarting from the checkpoints`);
    } finally {
      await src.close();
    }
    if (stats !== null) {
      for (const k of ['read', 'written', 'deadLettered', 'skipped', 'files', 'bytes'] as const) total[k] += stats[k];
    }
    if (signal?.aborted || stats !== null) break;
  }
  total.seconds = (Date.now() - started) / 1000;
  return total;
}
