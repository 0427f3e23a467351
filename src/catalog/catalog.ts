import { CatalogError } from '../errors.ts';
/** A column as the catalog knows it (Glue's Column). */
export interface CatalogColumn {
  name: string;
  /** Hive/Glue type: string, timestamp, bigint, double, ... */
  type: string;
  comment?: string;
}

/** Parquet as Glue/Athena want it declared. */
export const PARQUET_FORMAT = {
  inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
  outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
  serde: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
} as const;

/** A table (Glue's TableInput, reduced to what a Parquet lake table needs). */
export interface TableDef {
  name: string;
  /** Data columns, in file order; new ones are appended, never reordered. */
  columns: CatalogColumn[];
  /** Partition keys, in path order. */
  partitionKeys: CatalogColumn[];
  /** Storage key prefix of the table, relative to the lake root (e.g. `tracks`). */
  location: string;
  inputFormat: string;
  outputFormat: string;
  serde: string;
  /** Table parameters, e.g. `classification=parquet`. */
  parameters: Record<string, string>;
}

/** A partition (Glue's PartitionInput). */
export interface PartitionDef {
  /** Values, in the order of the table's partition keys. */
  values: string[];
  /** Storage key prefix holding the partition's files, relative to the lake root. */
  location: string;
  /** Bumped by every location change; compaction swaps check it (optimistic concurrency). */
  version: number;
}

/**
 * The Catalog port: Glue's data model (database → tables → partitions with locations).
 * All writes are idempotent; readers never see a half-applied change.
 */
export interface Catalog {
  /** Database name this catalog writes to. */
  readonly database: string;
  /** The table, or undefined. */
  getTable(name: string): Promise<TableDef | undefined>;
  /** All tables, sorted by name. */
  listTables(): Promise<TableDef[]>;
  /** Creates the table, or appends columns it lacks; refuses a change of partition keys. Returns the stored definition. */
  ensureTable(def: TableDef): Promise<TableDef>;
  /** All partitions of a table, sorted by values. */
  getPartitions(table: string): Promise<PartitionDef[]>;
  /** Registers partitions that are not registered yet (existing ones are left as they are). */
  addPartitions(table: string, partitions: Array<Pick<PartitionDef, 'values' | 'location'>>): Promise<void>;
  /**
   * Moves a partition to `location` in one step if its version is still `expectedVersion`
   * (compaction's generation swap); returns the new definition. A stale version is a
   * CatalogError with `conflict: true`: someone else swapped first.
   */
  swapPartitionLocation(table: string, values: string[], location: string, expectedVersion: number): Promise<PartitionDef>;
  /**
   * Unregisters a partition if its version is still `expectedVersion` (expiry); its files are left
   * to the caller. False when it is not registered (already dropped); a stale version is a
   * CatalogError with `conflict: true`, as for swapPartitionLocation.
   */
  dropPartition(table: string, values: string[], expectedVersion: number): Promise<boolean>;
}

/** The catalog refused a change because the partition moved since it was read. */
export function isConflict(err: unknown): boolean {
  return (err as { conflict?: boolean })?.conflict === true;
}

/** The partition's values joined as a map key. */
export function partitionKey(values: readonly string[]): string {
  return JSON.stringify(values);
}

/**
 * Refuses a definition that gives an existing column another type: Athena cannot read a partition
 * whose files disagree on a column's type, and files already written keep theirs. Names compare
 * case-insensitively, as Hive's do.
 */
export function checkColumnTypes(have: TableDef, def: TableDef): void {
  const types = new Map(have.columns.map((c) => [c.name.toLowerCase(), c]));
  for (const c of def.columns) {
    const old = types.get(c.name.toLowerCase());
    if (old !== undefined && old.type.toLowerCase() !== c.type.toLowerCase()) {
      throw new CatalogError(
        `column ${c.name} of table ${def.name} is ${old.type} in the catalog; cannot write it as ${c.type} ` +
          `(files already written keep ${old.type}, and Athena cannot read a partition whose files disagree) — keep ${old.type}, or promote the key under a new column name`,
      );
    }
  }
}
