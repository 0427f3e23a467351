import { createHash } from 'node:crypto';
import type { PositionRange } from '../writer/spool.ts';

/**
 * Data files written by another engine (Athena compaction) carry no footer metadata of ours: they
 * are named `a+<hash>-<n>.parquet`, and the ranges of the rows they hold are in the generation's
 * sidecar, GENERATION_RANGES_NAME at their location (a hidden name, which Athena and Hive skip).
 */
export const FOREIGN_FILE_PREFIX = 'a+';
/** The sidecar of a generation holding foreign-written files: a JSON array of RangesMeta. */
export const GENERATION_RANGES_NAME = '_tributary.ranges.json';

/** True for a data file whose ranges are in its generation's sidecar rather than its footer. */
export function isForeignDataFile(name: string): boolean {
  return name.startsWith(FOREIGN_FILE_PREFIX);
}

/** Parquet footer key holding the source positions a file covers (JSON: {source, ranges: {shard: [first, last]}}). */
export const RANGES_METADATA_KEY = 'tributary.ranges';

/**
 * The deterministic name of a data file: `<source>+<shard>+<first>+<last>.parquet` for one shard
 * (as Kafka Connect's S3 sink names by topic, partition and offset), `<source>+m+<hash>.parquet`
 * when the file holds several shards. The same input always yields the same name, so a retry
 * overwrites instead of duplicating.
 */
export function dataFileName(source: string, ranges: ReadonlyMap<string, PositionRange>): string {
  if (ranges.size === 1) {
    const [shard, r] = [...ranges][0]!;
    return `${source}+${shard}+${r.first}+${r.last}.parquet`;
  }
  return `${source}+m+${createHash('sha256').update(rangesJson(source, ranges)).digest('hex').slice(0, 32)}.parquet`;
}

/** The footer metadata value for `ranges` (shards sorted, positions as decimal strings). */
export function rangesJson(source: string, ranges: ReadonlyMap<string, PositionRange>): string {
  const obj: Record<string, [string, string]> = {};
  for (const shard of [...ranges.keys()].sort()) {
    const r = ranges.get(shard)!;
    obj[shard] = [r.first.toString(), r.last.toString()];
  }
  return JSON.stringify({ source, ranges: obj });
}

/** Parses a single-shard file name; null for multi-shard names (their ranges are in the footer) and foreign files. */
export function parseDataFileName(name: string): { source: string; shard: string; first: bigint; last: bigint } | null {
  const m = /^([^+/]+)\+([^+/]+)\+(\d+)\+(\d+)\.parquet$/.exec(name);
  if (m === null) return null;
  return { source: m[1]!, shard: m[2]!, first: BigInt(m[3]!), last: BigInt(m[4]!) };
}

/**
 * `<shard>-<first>-<last><ext>`: the name of a dead-letter or raw-copy file, from the positions it
 * holds, so after a crash each sink recovers its high-water marks from the names alone.
 */
export function rangeFileName(shard: string, first: bigint, last: bigint, ext: string): string {
  return `${shard}-${first}-${last}${ext}`;
}

/** The shard and range in a rangeFileName at the end of `key` with extension `ext`, or null for another name. */
export function rangeFileNameRange(key: string, ext: string): { shard: string; first: bigint; last: bigint } | null {
  if (!key.endsWith(ext)) return null;
  const m = /\/([^/]+)-(\d+)-(\d+)$/.exec(key.slice(0, key.length - ext.length));
  return m === null ? null : { shard: m[1]!, first: BigInt(m[2]!), last: BigInt(m[3]!) };
}
