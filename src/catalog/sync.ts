import { partitionKey, type Catalog } from './catalog.ts';

/** What a sync changed. */
export interface SyncResult {
  tables: number;
  /** Partitions newly registered in the target. */
  added: number;
  /** Partitions whose location the target had stale (compaction moved them) and now has current. */
  moved: number;
}

/**
 * Mirrors `from` (the embedded catalog, the lake's source of truth) into `to` (e.g. Glue): tables
 * (columns appended, never reordered), missing partitions, and partition locations that compaction
 * has moved since the last sync. Idempotent: a second run changes nothing.
 */
export async function syncCatalog(from: Catalog, to: Catalog, options: { table?: string } = {}): Promise<SyncResult> {
  const result: SyncResult = { tables: 0, added: 0, moved: 0 };
  for (const t of await from.listTables()) {
    if (options.table !== undefined && t.name !== options.table) continue;
    await to.ensureTable(t);
    result.tables++;
    const source = await from.getPartitions(t.name);
    const target = new Map((await to.getPartitions(t.name)).map((p) => [partitionKey(p.values), p]));
    const missing = source.filter((p) => !target.has(partitionKey(p.values)));
    if (missing.length > 0) {
      await to.addPartitions(t.name, missing.map((p) => ({ values: p.values, location: p.location })));
      result.added += missing.length;
    }
    for (const p of source) {
      const have = target.get(partitionKey(p.values));
      if (have !== undefined && have.location !== p.location) {
        await to.swapPartitionLocation(t.name, p.values, p.location, have.version);
        result.moved++;
      }
    }
  }
  return result;
}
