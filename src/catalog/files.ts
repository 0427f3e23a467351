import { isHiddenName, type ObjectInfo, type Storage } from '../storage/storage.ts';
import type { Catalog, PartitionDef } from './catalog.ts';

/** A committed data file of a partition. */
export interface CommittedFile extends ObjectInfo {
  partition: PartitionDef;
}

/**
 * The committed Parquet files of a table: the visible `.parquet` objects directly at each
 * partition's catalog location. Readers use this, never a glob over the table directory, because
 * compaction moves partition locations (DESIGN §5.5).
 */
export async function listCommittedFiles(storage: Storage, catalog: Catalog, table: string, partitions?: PartitionDef[]): Promise<CommittedFile[]> {
  const parts = partitions ?? (await catalog.getPartitions(table));
  const out: CommittedFile[] = [];
  for (const p of parts) {
    for (const o of await storage.list(p.location)) {
      const name = o.key.slice(o.key.lastIndexOf('/') + 1);
      if (!isHiddenName(name) && name.endsWith('.parquet')) out.push({ ...o, partition: p });
    }
  }
  return out;
}
