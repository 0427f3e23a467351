import type { CacheLease, CachedObject } from '../storage/file-cache.ts';
import type { Storage } from '../storage/storage.ts';
import { FOOTER_INITIAL_FETCH, parquetMetadataVia, type readParquetMetadata } from './parquet-footer.ts';

/** Two ranges closer than this are fetched as one (a request costs more than this many bytes on S3). */
const MERGE_GAP = 512 * 1024;

/**
 * Which columns to read of a file, given the top-level columns its footer lists (a file written
 * before a promoted column existed needs the JSON column it is filled from, the others do not).
 */
export type ColumnChoice = readonly string[] | ((fileColumns: readonly string[]) => readonly string[]);

/**
 * Local paths of `files` holding at least the bytes of the chosen columns, in order, for DuckDB,
 * which cannot read S3 here: files on local storage as they are; of remote ones, partial copies in
 * the file cache (sparse files of the object's size holding, at their offsets, the magic, the footer
 * and, in each row group, the chunks of those columns with their bloom filters and page indexes;
 * every other byte reads as zero), or whole copies where the columns are over half the file. A
 * reader that reads only those columns (a view that selects only them: DuckDB then reads only their
 * chunks) gets exactly the object's values, for a fraction of the bytes (measured: `message_id` is
 * 2% of the S3 bench's tracks files). The copies stay in the cache, for the next query, and grow
 * when one needs more columns.
 */
export async function columnPaths(storage: Storage, lease: CacheLease, files: CachedObject[], columns: ColumnChoice, rowGroups?: RowGroupChoice): Promise<string[]> {
  const choose = typeof columns === 'function' ? columns : () => columns;
  return lease.partialPaths(files, async (o, read) => {
    // A small file: its ranges would be joined across the gaps (MERGE_GAP) into most of it anyway.
    if (o.size <= 2 * MERGE_GAP) return null;
    const meta = await parquetMetadataVia(read, o.size, `${storage.root}/${o.key}`);
    // The file's tail, read for the footer (and kept by the reader): the copy holds it as it is.
    const tailStart = Math.max(0, o.size - FOOTER_INITIAL_FETCH);
    const groups = rowGroups?.(o, meta) ?? null;
    const columnNames = [...new Set(choose(topLevelNames(meta.schema)))];
    // A column's chunks in some row groups only are the parts `<column>@<row group>` (file-cache.ts).
    const names = (groups === null || groups.size === meta.row_groups.length ? columnNames : columnNames.flatMap((c) => [...groups].map((g) => `${c}@${g}`))).sort();
    return {
      names,
      ranges: (held) => {
        const chunks = chunkRanges(meta, new Set(held), o.size);
        if (chunks === null) return null;
        const ranges = mergeRanges([...chunks, [tailStart, o.size]], 0);
        // The columns are most of the file: a whole copy costs no more.
        return ranges.reduce((a, [st, e]) => a + e - st, 0) > o.size / 2 ? null : ranges;
      },
    };
  });
}

/** Which row groups of a file to copy the chosen columns of, from its footer (null: all of them). */
export type RowGroupChoice = (o: CachedObject, meta: Awaited<ReturnType<typeof readParquetMetadata>>) => ReadonlySet<number> | null;

/** Names of the file's top-level columns (the root's children; nested fields skipped). */
function topLevelNames(schema: ReadonlyArray<{ name: string; num_children?: number }>): string[] {
  const out: string[] = [];
  for (let j = 1; j < schema.length; j += subtreeSize(schema, j)) out.push(schema[j]!.name);
  return out;
}

function subtreeSize(schema: ReadonlyArray<{ num_children?: number }>, j: number): number {
  let size = 1;
  for (let c = 0, n = schema[j]!.num_children ?? 0; c < n; c++) size += subtreeSize(schema, j + size);
  return size;
}

/**
 * The byte ranges [start, end) of a copy holding `columns`, merged and sorted; null when a needed
 * range's length is unknown. A name `<column>@<i>` stands for that column's chunk in row group i only.
 */
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
  for (const [i, rg] of meta.row_groups.entries()) {
    for (const c of rg.columns) {
      const m = c.meta_data;
      if (m === undefined || !(columns.has(m.path_in_schema[0]!) || columns.has(`${m.path_in_schema[0]!}@${i}`))) continue;
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
  const merged = mergeRanges(ranges, MERGE_GAP);
  for (const [s, e] of merged) {
    if (s < 0 || e > size || s >= e) return null; // offsets that do not fit the file: read it whole
  }
  return merged;
}

/** `ranges` sorted, with those less than `gap` apart joined. */
function mergeRanges(ranges: Array<[number, number]>, gap: number): Array<[number, number]> {
  const merged: Array<[number, number]> = [];
  for (const [s, e] of [...ranges].sort((a, b) => a[0] - b[0])) {
    const last = merged.at(-1);
    if (last !== undefined && s <= last[1] + gap) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  return merged;
}
