import type { Catalog, CatalogColumn } from '../catalog/catalog.ts';
import { listCommittedFiles } from '../catalog/files.ts';
import type { Storage } from '../storage/storage.ts';
import { readParquetFooters } from '../writer/parquet-footer.ts';

/** A committed file as `tributary tables` shows it. */
export interface FileInfo {
  /** Key relative to the lake root. */
  path: string;
  rows: number;
  bytes: number;
}

/** A table with its partitions and files. */
export interface TableInfo {
  name: string;
  columns: CatalogColumn[];
  partitionKeys: CatalogColumn[];
  partitions: Array<{ values: string[]; location: string; files: FileInfo[] }>;
  rows: number;
  bytes: number;
  files: number;
}

/** Tables, columns, partitions and files (with row counts from the Parquet footers). */
export async function describeLake(storage: Storage, catalog: Catalog): Promise<TableInfo[]> {
  const tables = await catalog.listTables();
  const out: TableInfo[] = [];
  for (const t of tables) {
    const parts = await catalog.getPartitions(t.name);
    const files = await listCommittedFiles(storage, catalog, t.name, parts);
    // Row counts from the footers alone, by range reads: an S3 lake is not downloaded to be described.
    const footers = await readParquetFooters(storage, files);
    const rowsByKey = new Map(files.map((f, i) => [f.key, footers[i]!.rows]));
    const info: TableInfo = { name: t.name, columns: t.columns, partitionKeys: t.partitionKeys, partitions: [], rows: 0, bytes: 0, files: files.length };
    for (const p of parts) {
      const pf = files.filter((f) => f.partition === p).map((f) => ({ path: f.key, rows: rowsByKey.get(f.key) ?? 0, bytes: f.size }));
      info.partitions.push({ values: p.values, location: p.location, files: pf });
      for (const f of pf) {
        info.rows += f.rows;
        info.bytes += f.bytes;
      }
    }
    out.push(info);
  }
  return out;
}
