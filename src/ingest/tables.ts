import { PARQUET_FORMAT, type TableDef } from '../catalog/catalog.ts';
import type { PromotedColumn } from '../events/promote.ts';
import { EVENT_TYPES, columnsFor, type ColumnDef, type EventType } from '../events/schema.ts';
import { PARTITION_FIELDS, type PartitionField } from '../partition/spec.ts';
import type { EncoderConfig } from './encoder.ts';

/** How one event type is laid out in the lake. */
export interface TableLayout {
  type: EventType;
  table: string;
  /** Partition fields that apply to this table, in path order. */
  partitionBy: PartitionField[];
  /** Data columns written to files (partition columns removed). */
  dataColumns: ColumnDef[];
  def: TableDef;
}

/** The layout of `type`'s table under the partition spec (fields the table lacks, such as `event` for pages, are skipped), with `promoted` keys as columns. */
export function tableLayout(type: EventType, table: string, spec: readonly PartitionField[], promoted: readonly PromotedColumn[] = []): TableLayout {
  const all = columnsFor(type, promoted);
  const names = new Set(all.map((c) => c.name));
  const partitionBy = spec.filter((f) => PARTITION_FIELDS[f].column === null || names.has(PARTITION_FIELDS[f].column!));
  const partCols = new Set(partitionBy.map((f) => PARTITION_FIELDS[f].column).filter((c): c is string => c !== null));
  const dataColumns = all.filter((c) => !partCols.has(c.name));
  return {
    type,
    table,
    partitionBy,
    dataColumns,
    def: {
      name: table,
      columns: dataColumns.map((c) => ({ name: c.name, type: c.glueType, comment: c.comment })),
      partitionKeys: partitionBy.map((f) => ({ name: f, type: PARTITION_FIELDS[f].glueType })),
      location: table,
      ...PARQUET_FORMAT,
      parameters: { classification: 'parquet', 'parquet.compression': 'ZSTD', tributary_event_type: type },
    },
  };
}

/** Every event type's layout: its table (from `tables`) under the partition spec, with its promoted keys. */
export function tableLayouts(tables: Record<EventType, string>, spec: readonly PartitionField[], promoted: Partial<Record<EventType, readonly PromotedColumn[]>> = {}): Map<EventType, TableLayout> {
  return new Map(EVENT_TYPES.map((t) => [t, tableLayout(t, tables[t], spec, promoted[t] ?? [])]));
}

/** What the encoder needs of the layouts (plain data: it crosses to worker threads). */
export function encoderConfig(layouts: Map<EventType, TableLayout>): EncoderConfig {
  const of = <T>(f: (l: TableLayout) => T) => Object.fromEntries([...layouts].map(([t, l]) => [t, f(l)])) as Record<EventType, T>;
  return { tables: of((l) => l.table), partitionBy: of((l) => l.partitionBy) };
}
