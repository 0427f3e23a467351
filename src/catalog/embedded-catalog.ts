import { CatalogError, ConfigError } from '../errors.ts';
import type { Storage } from '../storage/storage.ts';
import { checkColumnTypes, partitionKey, type Catalog, type PartitionDef, type TableDef } from './catalog.ts';

/** One immutable version of a table's catalog entry, stored as JSON. */
interface TableSnapshot {
  version: number;
  table: TableDef;
  partitions: PartitionDef[];
}

const VERSION_DIGITS = 10;
/** Versions kept behind the newest, so a reader that listed just before a write still finds its file. */
const KEEP_VERSIONS = 20;
const MAX_ATTEMPTS = 50;

/**
 * A catalog stored in the lake itself under `_tributary/catalog/<database>/<table>/v<N>.json`.
 * Each change writes version N+1 with an exclusive create, so concurrent writers (several ingest
 * processes) serialize by optimistic retry and readers always read one complete version.
 */
export class EmbeddedCatalog implements Catalog {
  readonly database: string;
  private readonly storage: Storage;

  constructor(storage: Storage, database = 'tributary') {
    if (!/^[a-z_][a-z0-9_]{0,254}$/.test(database)) {
      throw new ConfigError(`catalog database ${JSON.stringify(database)} is not valid; expected lower-case letters, digits and _ (Glue's rule)`);
    }
    this.storage = storage;
    this.database = database;
  }

  private prefix(table?: string): string {
    return `_tributary/catalog/${this.database}${table === undefined ? '' : '/' + table}`;
  }

  private async latest(table: string): Promise<TableSnapshot | undefined> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const versions = (await this.storage.list(this.prefix(table))).filter((o) => /\/v\d+\.json$/.test(o.key));
      const newest = versions.at(-1);
      if (newest === undefined) return undefined;
      const body = await this.storage.get(newest.key);
      if (body === undefined) continue; // pruned between list and get: list again
      try {
        return JSON.parse(body.toString('utf8')) as TableSnapshot;
      } catch (err) {
        throw new CatalogError(`catalog file ${newest.key} is corrupt: ${(err as Error).message}`, { cause: err });
      }
    }
    throw new CatalogError(`catalog table ${table}: versions keep disappearing while reading`, { retriable: true });
  }

  /** Applies `change` to the newest snapshot and stores it as the next version, retrying on conflicts. */
  private async update(table: string, change: (snap: TableSnapshot | undefined) => TableSnapshot | null): Promise<TableSnapshot | undefined> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.latest(table);
      const next = change(current);
      if (next === null) return current; // nothing to change
      next.version = (current?.version ?? 0) + 1;
      const key = `${this.prefix(table)}/v${String(next.version).padStart(VERSION_DIGITS, '0')}.json`;
      if (await this.storage.putIfAbsent(key, JSON.stringify(next))) {
        await this.prune(table, next.version);
        return next;
      }
      await new Promise((r) => setTimeout(r, Math.min(200, 5 * 2 ** Math.min(attempt, 6)) * Math.random()));
    }
    throw new CatalogError(`catalog table ${table}: gave up after ${MAX_ATTEMPTS} concurrent modifications`, { retriable: true });
  }

  private async prune(table: string, newest: number): Promise<void> {
    if (newest % KEEP_VERSIONS !== 0) return;
    const old = (await this.storage.list(this.prefix(table)))
      .map((o) => o.key)
      .filter((k) => {
        const m = /\/v(\d+)\.json$/.exec(k);
        return m !== null && Number(m[1]) <= newest - KEEP_VERSIONS;
      });
    await this.storage.delete(old);
  }

  async getTable(name: string): Promise<TableDef | undefined> {
    return (await this.latest(name))?.table;
  }

  async listTables(): Promise<TableDef[]> {
    const keys = await this.storage.list(this.prefix(), { recursive: true });
    const names = [...new Set(keys.map((o) => o.key.slice(this.prefix().length + 1).split('/')[0]!).filter((n) => n.length > 0))].sort();
    const out: TableDef[] = [];
    for (const n of names) {
      const t = await this.getTable(n);
      if (t !== undefined) out.push(t);
    }
    return out;
  }

  async ensureTable(def: TableDef): Promise<TableDef> {
    const snap = await this.update(def.name, (cur) => {
      if (cur === undefined) return { version: 0, table: def, partitions: [] };
      const have = cur.table;
      const sameKeys =
        have.partitionKeys.length === def.partitionKeys.length && have.partitionKeys.every((k, i) => k.name === def.partitionKeys[i]!.name);
      if (!sameKeys) {
        throw new CatalogError(
          `table ${def.name} is partitioned by (${have.partitionKeys.map((k) => k.name).join(', ')}); ` +
            `cannot write it partitioned by (${def.partitionKeys.map((k) => k.name).join(', ')}) — use the table's spec or another lake`,
        );
      }
      checkColumnTypes(have, def);
      const known = new Set(have.columns.map((c) => c.name));
      const added = def.columns.filter((c) => !known.has(c.name));
      if (added.length === 0) return null;
      return { version: 0, table: { ...have, columns: [...have.columns, ...added] }, partitions: cur.partitions };
    });
    return snap!.table;
  }

  async getPartitions(table: string): Promise<PartitionDef[]> {
    return (await this.latest(table))?.partitions ?? [];
  }

  async swapPartitionLocation(table: string, values: string[], location: string, expectedVersion: number): Promise<PartitionDef> {
    const key = partitionKey(values);
    const snap = await this.update(table, (cur) => {
      const p = cur?.partitions.find((x) => partitionKey(x.values) === key);
      if (cur === undefined || p === undefined) throw new CatalogError(`table ${table} has no partition ${key}`);
      if (p.version !== expectedVersion) {
        throw Object.assign(
          new CatalogError(`partition ${key} of ${table} is at version ${p.version}, not ${expectedVersion}: another compaction swapped it first`),
          { conflict: true },
        );
      }
      return {
        version: 0,
        table: cur.table,
        partitions: cur.partitions.map((x) => (x === p ? { values: x.values, location, version: x.version + 1 } : x)),
      };
    });
    return snap!.partitions.find((x) => partitionKey(x.values) === key)!;
  }

  async dropPartition(table: string, values: string[], expectedVersion: number): Promise<boolean> {
    const key = partitionKey(values);
    let dropped = false;
    await this.update(table, (cur) => {
      dropped = false;
      const p = cur?.partitions.find((x) => partitionKey(x.values) === key);
      if (cur === undefined || p === undefined) return null;
      if (p.version !== expectedVersion) {
        throw Object.assign(new CatalogError(`partition ${key} of ${table} is at version ${p.version}, not ${expectedVersion}: it moved since it was read`), { conflict: true });
      }
      dropped = true;
      return { version: 0, table: cur.table, partitions: cur.partitions.filter((x) => x !== p) };
    });
    return dropped;
  }

  async addPartitions(table: string, partitions: Array<Pick<PartitionDef, 'values' | 'location'>>): Promise<void> {
    await this.update(table, (cur) => {
      if (cur === undefined) throw new CatalogError(`cannot add partitions to table ${table}: it does not exist`);
      const known = new Set(cur.partitions.map((p) => partitionKey(p.values)));
      const fresh = partitions.filter((p) => !known.has(partitionKey(p.values)));
      if (fresh.length === 0) return null;
      const all = [...cur.partitions, ...fresh.map((p) => ({ values: [...p.values], location: p.location, version: 1 }))];
      all.sort((a, b) => (partitionKey(a.values) < partitionKey(b.values) ? -1 : 1));
      return { version: 0, table: cur.table, partitions: all };
    });
  }
}
