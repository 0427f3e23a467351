import { partitionKey, type Catalog } from './catalog.ts';

/** What a sync changed. */
export interface SyncResult {
  tables: number;
  /** Partitions newly registered in the target. */
  added: number;
  /** Partitions whose location the target had stale (compaction moved them) and now has current. */
  moved: number;
  /** Partitions the target held and the source no longer does (expired), dropped with `prune`. */
  dropped: number;
}

/**
 * Mirrors `from` (the embedded catalog, the lake's source of truth) into `to` (e.g. Glue): tables
 * (columns appended, never reordered), missing partitions, and partition locations that compaction
 * has moved since the last sync; with `prune`, also drops the target's partitions of those tables
 * that the source no longer has (expired ones). Without it nothing is ever removed from the target:
 * a lake whose embedded catalog was lost must not empty its Glue tables. Idempotent.
 */
export async function syncCatalog(from: Catalog, to: Catalog, options: { table?: string; prune?: boolean } = {}): Promise<SyncResult> {
  const result: SyncResult = { tables: 0, added: 0, moved: 0, dropped: 0 };
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
    if (options.prune) {
      const keep = new Set(source.map((p) => partitionKey(p.values)));
      for (const p of target.values()) if (!keep.has(partitionKey(p.values)) && (await to.dropPartition(t.name, p.values, p.version))) result.dropped++;
    }
  }
  return result;
}
