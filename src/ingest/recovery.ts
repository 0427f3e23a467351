import { partitionKey, type Catalog, type PartitionDef } from '../catalog/catalog.ts';
import { listCommittedFiles, type CommittedFile } from '../catalog/files.ts';
import type { Storage } from '../storage/storage.ts';
import { readParquetFooters } from '../writer/parquet-footer.ts';
import { GENERATION_RANGES_NAME, RANGES_METADATA_KEY, isForeignDataFile, parseDataFileName } from './file-names.ts';
import { StorageError } from '../errors.ts';

/** Per partition (by partitionKey of its values), per shard: the highest committed position. */
export type PartitionMarks = Map<string, Map<string, bigint>>;

/** The `tributary.ranges` footer value of one source. */
export interface RangesMeta {
  source: string;
  ranges: Record<string, [string, string]>;
}

/** What a table looks like to a restarting writer. */
export interface RecoveredTable {
  partitions: Map<string, PartitionDef>;
  marks: PartitionMarks;
}

function raise(marks: PartitionMarks, part: string, shard: string, last: bigint): void {
  let m = marks.get(part);
  if (m === undefined) marks.set(part, (m = new Map()));
  if ((m.get(shard) ?? -1n) < last) m.set(shard, last);
}

/**
 * Recovers, from the committed files themselves, how far each shard of `source` got in each
 * partition of `table` (DESIGN §5.2). Single-shard files say it in their names; multi-shard and
 * merged files in their Parquet footers, read by range reads (never the whole file, even on S3).
 */
export async function recoverTable(storage: Storage, catalog: Catalog, table: string, source: string): Promise<RecoveredTable> {
  const parts = await catalog.getPartitions(table);
  const partitions = new Map(parts.map((p) => [partitionKey(p.values), p]));
  const marks: PartitionMarks = new Map();
  const needFooters: CommittedFile[] = [];
  const sidecars = new Set<PartitionDef>();
  for (const f of await listCommittedFiles(storage, catalog, table, parts)) {
    const name = f.key.slice(f.key.lastIndexOf('/') + 1);
    const part = partitionKey(f.partition.values);
    const parsed = parseDataFileName(name);
    if (parsed !== null) {
      if (parsed.source === source) raise(marks, part, parsed.shard, parsed.last);
      continue;
    }
    if (isForeignDataFile(name)) {
      sidecars.add(f.partition);
      continue;
    }
    needFooters.push(f);
  }
  for (const p of sidecars) {
    for (const entry of await readGenerationRanges(storage, p.location)) {
      if (entry.source !== source) continue;
      for (const [shard, [, last]] of Object.entries(entry.ranges)) raise(marks, partitionKey(p.values), shard, BigInt(last));
    }
  }
  await readFooterMarks(storage, needFooters, source, marks);
  return { partitions, marks };
}

/** Raises `marks` from the ranges recorded in the footers of (multi-shard and merged) files, read by range reads. */
async function readFooterMarks(storage: Storage, files: CommittedFile[], source: string, marks: PartitionMarks): Promise<void> {
  const footers = await readParquetFooters(storage, files);
  files.forEach((f, i) => {
    const value = footers[i]!.kv.get(RANGES_METADATA_KEY);
    if (value === undefined) return;
    // One object for a written file; an array of them for a merged one (one per source).
    const parsed = JSON.parse(value) as RangesMeta | RangesMeta[];
    for (const entry of Array.isArray(parsed) ? parsed : [parsed]) {
      if (entry.source !== source) continue;
      for (const [shard, [, last]] of Object.entries(entry.ranges)) raise(marks, partitionKey(f.partition.values), shard, BigInt(last));
    }
  });
}

/**
 * The ranges sidecar of the generation at `location` (files written by Athena compaction, see
 * FOREIGN_FILE_PREFIX). A location holding such files without a sidecar is an error, never an
 * empty answer: recovering without those ranges would ingest their rows again.
 */
export async function readGenerationRanges(storage: Storage, location: string): Promise<RangesMeta[]> {
  const key = `${location}/${GENERATION_RANGES_NAME}`;
  const body = await storage.get(key);
  if (body === undefined) throw new StorageError(`${storage.root}/${key} is missing: the files Athena wrote at ${location} have no recorded source ranges`);
  try {
    return JSON.parse(body.toString('utf8')) as RangesMeta[];
  } catch (err) {
    throw new StorageError(`${storage.root}/${key} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** The union of `entries`, per source and shard the lowest first and highest last position. */
export function unionRanges(entries: Iterable<RangesMeta>): RangesMeta[] {
  const merged = new Map<string, Map<string, [bigint, bigint]>>();
  for (const e of entries) {
    let m = merged.get(e.source);
    if (m === undefined) merged.set(e.source, (m = new Map()));
    for (const [shard, [first, last]] of Object.entries(e.ranges)) {
      const cur = m.get(shard);
      const f = BigInt(first);
      const l = BigInt(last);
      m.set(shard, cur === undefined ? [f, l] : [cur[0] < f ? cur[0] : f, cur[1] > l ? cur[1] : l]);
    }
  }
  return [...merged]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([source, m]) => ({ source, ranges: Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : 1)).map(([s, [f, l]]) => [s, [f.toString(), l.toString()]])) }));
}
