import { closeSync, mkdirSync, openSync, ftruncateSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { StorageError } from '../errors.ts';
import type { CacheLease, CachedObject } from '../storage/file-cache.ts';
import type { Storage } from '../storage/storage.ts';
import { parquetMetadata } from 'hyparquet';
import { FOOTER_INITIAL_FETCH, readParquetMetadata } from './parquet-footer.ts';

/** Two ranges closer than this are fetched as one (a request costs more than this many bytes on S3). */
const MERGE_GAP = 512 * 1024;
const CONCURRENCY = 8;

/**
 * Local copies of Parquet objects holding only some columns' bytes, for DuckDB, which cannot read S3
 * here: each copy is a sparse file of the object's size with, at their offsets, the magic, the
 * footer and, in each row group, the chunks of the named top-level columns with their bloom filters
 * and page indexes; every other byte reads as zero. A reader that reads only those columns (a view
 * that selects only them: DuckDB then reads only their chunks) gets exactly the object's values,
 * for a fraction of the bytes (measured: `message_id` is 2% of the S3 bench's tracks files).
 * Copies go under `dir`, at the objects' keys (Hive `k=v` paths stay readable). Returns, per object
 * in order, the copy, or undefined where the whole file is needed or costs no more (the columns are
 * over half of it).
 */
export async function columnCopies(storage: Storage, objects: ReadonlyArray<{ key: string; size: number }>, columns: readonly string[], dir: string): Promise<Array<string | undefined>> {
  const want = new Set(columns);
  const out = new Array<string | undefined>(objects.length);
  let next = 0;
  const worker = async () => {
    while (next < objects.length) {
      const i = next++;
      const o = objects[i]!;
      // The file's tail: the footer is parsed from it when it fits (ours do), and it is written to the copy as it is.
      const tailStart = Math.max(0, o.size - FOOTER_INITIAL_FETCH);
      const tail = await fetchRange(storage, o.key, tailStart, o.size);
      const footerLength = tail.length >= 8 ? tail.readUInt32LE(tail.length - 8) : Infinity;
      const meta = footerLength + 8 <= tail.length ? parquetMetadata(tail) : await readParquetMetadata(storage, o.key, o.size);
      const ranges = chunkRanges(meta, want, o.size);
      // The whole file is needed, or the columns are most of it: then a whole copy (cached) costs no more.
      const toFetch = ranges?.flatMap(([st, e]): Array<[number, number]> => (st >= tailStart ? [] : [[st, Math.min(e, tailStart)]]));
      if (toFetch === undefined || toFetch.reduce((a, [st, e]) => a + e - st, 0) + tail.length > o.size / 2) continue;
      const local = path.join(dir, o.key);
      mkdirSync(path.dirname(local), { recursive: true });
      const fd = openSync(local, 'w');
      try {
        ftruncateSync(fd, o.size);
        writeSync(fd, tail, 0, tail.length, tailStart);
        for (const [start, end] of toFetch) {
          const b = await fetchRange(storage, o.key, start, end);
          writeSync(fd, b, 0, b.length, start);
        }
      } finally {
        closeSync(fd);
      }
      out[i] = local;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, objects.length) }, worker));
  return out;
}

async function fetchRange(storage: Storage, key: string, start: number, end: number): Promise<Buffer> {
  const b = await storage.getRange(key, start, end - start);
  if (b === undefined || b.length !== end - start) throw new StorageError(`${storage.root}/${key} changed while its columns were being read (range ${start}-${end})`, { retriable: true });
  return b;
}

/**
 * Local paths of `files` holding at least the bytes of `columns`, in order: files on local storage
 * as they are, column copies of remote ones (under `dir`), and whole copies through `lease` where a
 * column copy would not do.
 */
export async function columnPaths(storage: Storage, lease: CacheLease, files: CachedObject[], columns: readonly string[], dir: string): Promise<string[]> {
  const remote = files.filter((f) => storage.localPath(f.key) === undefined);
  const copies = await columnCopies(storage, remote, columns, dir);
  const copyOf = new Map(remote.map((f, i) => [f.key, copies[i]]));
  const whole = files.filter((f) => copyOf.get(f.key) === undefined);
  const wholeOf = new Map((await lease.paths(whole)).map((p, i) => [whole[i]!.key, p]));
  return files.map((f) => copyOf.get(f.key) ?? wholeOf.get(f.key)!);
}

/** The byte ranges [start, end) of a copy holding `columns`, merged and sorted; null when a needed range's length is unknown. */
export function chunkRanges(
  meta: Awaited<ReturnType<typeof readParquetMetadata>>,
  columns: ReadonlySet<string>,
  size: number,
): Array<[number, number]> | null {
  const footerStart = size - meta.metadata_length - 8;
  const ranges: Array<[number, number]> = [
    [0, 4],
    [footerStart, size],
  ];
  for (const rg of meta.row_groups) {
    for (const c of rg.columns) {
      const m = c.meta_data;
      if (m === undefined || !columns.has(m.path_in_schema[0]!)) continue;
      const data = Number(m.data_page_offset);
      const dict = m.dictionary_page_offset === undefined ? undefined : Number(m.dictionary_page_offset);
      const start = dict !== undefined && dict > 0 && dict < data ? dict : data;
      ranges.push([start, start + Number(m.total_compressed_size)]);
      const extra: Array<[bigint | undefined, number | undefined]> = [
        [m.bloom_filter_offset, m.bloom_filter_length],
        [c.column_index_offset, c.column_index_length],
        [c.offset_index_offset, c.offset_index_length],
      ];
      for (const [off, len] of extra) {
        if (off === undefined) continue;
        if (len === undefined) return null;
        ranges.push([Number(off), Number(off) + len]);
      }
    }
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const [s, e] of ranges) {
    const last = merged.at(-1);
    if (last !== undefined && s <= last[1] + MERGE_GAP) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  for (const [s, e] of merged) {
    if (s < 0 || e > size || s >= e) return null; // offsets that do not fit the file: read it whole
  }
  return merged;
}
