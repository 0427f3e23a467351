import { parquetMetadataAsync, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { StorageError } from '../errors.ts';
import type { Storage } from '../storage/storage.ts';

/** Bytes fetched from a file's end first: our footers (a few row groups of ~25 columns) fit, else one more read. */
export const FOOTER_INITIAL_FETCH = 64 * 1024;

/** What a Parquet footer says that Tributary reads without the file. */
export interface ParquetFooter {
  rows: number;
  /** Names in the file's schema (its columns, and the fields of nested ones). */
  columns: string[];
  /** Key-value metadata (`tributary.ranges`, `tributary.table`, ...). */
  kv: Map<string, string>;
}

/** Footers read at once by readParquetFooters: each is one or two small range reads, on S3 mostly waiting. */
const CONCURRENCY = 8;

/**
 * The footer of the Parquet object at `key` (`size` bytes, as listed), read by range reads (one, or
 * two for a large footer): the file itself is never fetched, which on S3 is the difference between
 * reading ~64 KiB and a whole 1 GiB file.
 */
export async function readParquetFooter(storage: Storage, key: string, size: number): Promise<ParquetFooter> {
  const meta = await readParquetMetadata(storage, key, size);
  return { rows: Number(meta.num_rows), columns: meta.schema.slice(1).map((e) => e.name), kv: new Map((meta.key_value_metadata ?? []).map((kv) => [kv.key, kv.value ?? ''])) };
}

/** The whole file metadata of the Parquet object at `key` (row groups and column chunks with their offsets), read as readParquetFooter reads it. */
export async function readParquetMetadata(storage: Storage, key: string, size: number): Promise<FileMetaData> {
  const read = async (start: number, stop: number): Promise<Buffer> => {
    const b = await storage.getRange(key, start, Math.max(1, stop - start));
    if (b === undefined) throw new StorageError(`${storage.root}/${key} disappeared while its Parquet footer was being read`, { retriable: true });
    if (b.length !== stop - start) throw new StorageError(`${storage.root}/${key} is shorter than its listed ${size} bytes (rewritten while being read?)`, { retriable: true });
    return b;
  };
  return parquetMetadataVia(read, size, `${storage.root}/${key}`);
}

/**
 * The file metadata of a Parquet file of `size` bytes whose bytes [start, end) `read` gives: one
 * read of its last FOOTER_INITIAL_FETCH bytes, a second one for a larger footer. `label` names the
 * file in the error a file that is not Parquet gets.
 */
export async function parquetMetadataVia(read: (start: number, end: number) => Promise<Buffer>, size: number, label: string): Promise<FileMetaData> {
  const file: AsyncBuffer = {
    byteLength: size,
    slice: async (start: number, end = size) => {
      const b = await read(start, end);
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
    },
  };
  try {
    return await parquetMetadataAsync(file, { initialFetchSize: FOOTER_INITIAL_FETCH });
  } catch (err) {
    if (err instanceof StorageError) throw err;
    throw new StorageError(`${label} is not a readable Parquet file: ${(err as Error).message}`, { cause: err });
  }
}

/** readParquetFooter of each object, several at once; results in the order of `objects`. */
export async function readParquetFooters(storage: Storage, objects: ReadonlyArray<{ key: string; size: number }>): Promise<ParquetFooter[]> {
  const out = new Array<ParquetFooter>(objects.length);
  let next = 0;
  const worker = async () => {
    while (next < objects.length) {
      const i = next++;
      out[i] = await readParquetFooter(storage, objects[i]!.key, objects[i]!.size);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, objects.length) }, worker));
  return out;
}
