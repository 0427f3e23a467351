import type { Catalog } from '../catalog/catalog.ts';
import { LeaseLostError } from '../errors.ts';
import { KinesisSource, type KinesisSourceOptions } from '../source/kinesis-source.ts';
import type { Storage } from '../storage/storage.ts';
import { Ingestor, type IngestOptions, type IngestStats } from './ingestor.ts';

/**
 * Consumes a Kinesis stream into the lake until `ingest.signal` aborts: runs the pipeline over a
 * KinesisSource and, when a shard lease is lost (this process stalled past the lease timeout),
 * throws the uncommitted rows away and starts again from the checkpoints — replays are skipped by
 * the committed high-water marks, so nothing is lost or doubled. Resolves with the summed counts.
 */
export async function consumeKinesis(
  storage: Storage,
  catalog: Catalog,
  ingest: IngestOptions,
  source: Omit<KinesisSourceOptions, 'storage'>,
  hooks: { onSource?: (s: KinesisSource) => void } = {},
): Promise<IngestStats> {
  const ingestor = new Ingestor(storage, catalog, ingest);
  const total: IngestStats = { read: 0, written: 0, deadLettered: 0, skipped: 0, files: 0, bytes: 0, seconds: 0, inputBytes: 0, inputTotalBytes: null };
  const started = Date.now();
  for (;;) {
    const src = new KinesisSource({ ...source, storage });
    hooks.onSource?.(src);
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
    if (ingest.signal?.aborted || stats !== null) break;
  }
  total.seconds = (Date.now() - started) / 1000;
  return total;
}
