import type { Catalog, CatalogColumn } from '../catalog/catalog.ts';
import { listCommittedFiles } from '../catalog/files.ts';
import { FileCache } from '../storage/file-cache.ts';
import type { Storage } from '../storage/storage.ts';
import { openDuckDB, sqlString } from '../writer/duckdb.ts';

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
  const { instance, conn } = await openDuckDB({ memoryLimit: '256MB' });
  const lease = new FileCache(storage).lease();
  try {
    for (const t of tables) {
      const parts = await catalog.getPartitions(t.name);
      const files = await listCommittedFiles(storage, catalog, t.name, parts);
      const rowsByPath = new Map<string, number>();
      const local = await lease.paths(files);
      const localOf = new Map(files.map((f, i) => [f.key, local[i]!]));
      for (let i = 0; i < local.length; i += 500) {
        const list = local.slice(i, i + 500).map(sqlString).join(', ');
        const res = await conn.runAndReadAll(`SELECT file_name, num_rows FROM parquet_file_metadata([${list}])`);
        for (const [f, n] of res.getRows() as Array<[string, bigint]>) rowsByPath.set(f, Number(n));
      }
      const info: TableInfo = { name: t.name, columns: t.columns, partitionKeys: t.partitionKeys, partitions: [], rows: 0, bytes: 0, files: files.length };
      for (const p of parts) {
        const pf = files
          .filter((f) => f.partition === p)
          .map((f) => ({ path: f.key, rows: rowsByPath.get(localOf.get(f.key)!) ?? 0, bytes: f.size }));
        info.partitions.push({ values: p.values, location: p.location, files: pf });
        for (const f of pf) {
          info.rows += f.rows;
          info.bytes += f.bytes;
        }
      }
      out.push(info);
    }
  } finally {
    conn.closeSync();
    instance.closeSync();
    lease.release();
  }
  return out;
}
