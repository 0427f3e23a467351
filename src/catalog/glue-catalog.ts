import {
  BatchCreatePartitionCommand,
  BatchDeletePartitionCommand,
  CreateDatabaseCommand,
  CreateTableCommand,
  GetDatabaseCommand,
  GetPartitionCommand,
  GetPartitionsCommand,
  GetTableCommand,
  GetTablesCommand,
  GlueClient,
  UpdatePartitionCommand,
  UpdateTableCommand,
  type Column,
  type Partition,
  type PartitionInput,
  type StorageDescriptor,
  type Table,
  type TableInput,
} from '@aws-sdk/client-glue';
import { isRetriableSdkError, type SdkErrorShape } from '../aws/sdk-errors.ts';
import { badOption, CatalogError, ConfigError } from '../errors.ts';
import { checkClientOptions } from '../aws/client-options.ts';
import { parseS3Uri } from '../storage/s3-uri.ts';
import { checkColumnTypes, partitionKey, type Catalog, type CatalogColumn, type PartitionDef, type TableDef } from './catalog.ts';

/** BatchCreatePartition takes at most 100 PartitionInputs per request (Glue API reference). */
export const GLUE_MAX_PARTITIONS_PER_BATCH = 100;
/** GetTables: MaxResults 1..100. */
const GET_TABLES_MAX_RESULTS = 100;
/** GetPartitions: MaxResults 1..1000. */
const GET_PARTITIONS_MAX_RESULTS = 1000;
/** StorageDescriptor.Location: at most 2056 characters. */
const MAX_LOCATION_LENGTH = 2056;
/** Partition parameter holding the version the port's optimistic swaps compare. */
export const VERSION_PARAMETER = 'tributary_version';
/** Attempts per request made by a client this class creates (the SDK's own retries, below ours). */
const DEFAULT_CLIENT_MAX_ATTEMPTS = 3;
const DEFAULT_RETRY = { maxAttempts: 8, baseDelayMs: 50, maxDelayMs: 2_000 };

/** Glue (and Athena) names: lower-case letters, digits and _, at most 255 characters. */
const NAME_RULE = /^[a-z_][a-z0-9_]{0,254}$/;
const NAME_RULE_TEXT = 'lower-case letters, digits and _, starting with a letter or _, at most 255 characters (Glue/Athena naming rules)';
/** Glue's "single-line string" pattern: no control characters but tab. */
const SINGLE_LINE = /^[\u0020-\uD7FF\uE000-\uFFFD\uD800-\uDBFF\uDC00-\uDFFF\t]*$/;

export interface GlueCatalogOptions {
  /** Glue database the lake's tables live in; created on first write when missing. */
  database: string;
  /**
   * `s3://bucket/prefix` of the lake root. The port's locations are storage keys relative to the
   * root; Glue stores absolute URIs (`s3://bucket/prefix/<key>/`), mapped both ways.
   */
  locationRoot: string;
  /** A configured client; when given, `region` and `endpoint` must not be. */
  client?: GlueClient;
  /** AWS region; otherwise the SDK's usual resolution (AWS_REGION, profile). */
  region?: string;
  /** Endpoint URL (a Glue-compatible service or a test server). */
  endpoint?: string;
  /** Data Catalog ID (normally the AWS account ID); default: the caller's account. */
  catalogId?: string;
  /** Retries of throttling, concurrent modifications, internal errors and timeouts, above the SDK's own. */
  retry?: { maxAttempts?: number; baseDelayMs?: number; maxDelayMs?: number };
}

/** Glue's error codes (and the SDK's) that mean "try again later". */
const RETRIABLE_CODES = new Set([
  'ConcurrentModificationException',
  'ThrottlingException',
  'InternalServiceException',
  'OperationTimeoutException',
  'ResourceNotReadyException',
  'FederationSourceRetryableException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ServiceUnavailable',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);

function errorName(err: unknown): string | undefined {
  return (err as SdkErrorShape | undefined)?.name;
}

function isRetriable(err: unknown): boolean {
  return isRetriableSdkError(err, RETRIABLE_CODES);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * In-process serialization of swaps of one partition (read, compare, write), shared by every
 * GlueCatalog of this process; see swapPartitionLocation for what keeps other processes apart.
 */
const swapLocks = new Map<string, Promise<void>>();

async function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = swapLocks.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((resolve) => (release = resolve));
  const tail = previous.then(() => mine);
  swapLocks.set(key, tail);
  await previous;
  try {
    return await fn();
  } finally {
    release();
    if (swapLocks.get(key) === tail) swapLocks.delete(key);
  }
}

/**
 * The Catalog port on the AWS Glue Data Catalog: tables are EXTERNAL_TABLEs declared as Parquet
 * (ParquetHiveSerDe, MapredParquetInputFormat/OutputFormat, classification=parquet), partitions are
 * Glue partitions whose StorageDescriptor copies the table's with the partition's own location.
 *
 * - Locations: the port's are storage keys relative to the lake root; Glue holds absolute
 *   `s3://…/` URIs under `locationRoot`. A Glue location outside the root is refused (getTable,
 *   getPartitions); listTables leaves out tables that do not live under the root (they belong to
 *   something else sharing the database).
 * - Versions: a partition's version is its `tributary_version` parameter (1 when absent).
 * - Errors are CatalogError naming the table or partition; `retriable` is true for throttling,
 *   concurrent modifications, internal errors, timeouts and network failures, which are first
 *   retried here with jittered exponential backoff (8 attempts by default) on top of the SDK's own.
 */
export class GlueCatalog implements Catalog {
  readonly database: string;
  /** `s3://bucket` or `s3://bucket/prefix`, without trailing '/'. */
  readonly locationRoot: string;
  readonly catalogId: string | undefined;
  private readonly client: GlueClient;
  private readonly retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  private databaseReady: Promise<void> | undefined;

  constructor(options: GlueCatalogOptions) {
    if (options === null || typeof options !== 'object') badOption('Glue catalog options', options, 'an object with database and locationRoot');
    if (typeof options.database !== 'string' || !NAME_RULE.test(options.database)) {
      badOption('Glue database', options.database, NAME_RULE_TEXT);
    }
    this.database = options.database;
    this.locationRoot = parseLocationRoot(options.locationRoot);

    if (options.catalogId !== undefined) {
      const id = options.catalogId;
      if (typeof id !== 'string' || id.length < 1 || id.length > 255 || !SINGLE_LINE.test(id)) {
        badOption('Glue catalogId', id, 'the Data Catalog ID (normally the 12-digit AWS account ID): 1 to 255 characters without control characters');
      }
    }
    this.catalogId = options.catalogId;

    const r = options.retry ?? {};
    if (r === null || typeof r !== 'object') badOption('Glue retry', r, 'an object { maxAttempts, baseDelayMs, maxDelayMs }');
    const maxAttempts = r.maxAttempts ?? DEFAULT_RETRY.maxAttempts;
    if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 20) badOption('Glue retry.maxAttempts', maxAttempts, 'a whole number from 1 to 20');
    const baseDelayMs = r.baseDelayMs ?? DEFAULT_RETRY.baseDelayMs;
    if (!Number.isFinite(baseDelayMs) || baseDelayMs < 0 || baseDelayMs > 60_000) badOption('Glue retry.baseDelayMs', baseDelayMs, 'milliseconds from 0 to 60000');
    const maxDelayMs = r.maxDelayMs ?? Math.max(DEFAULT_RETRY.maxDelayMs, baseDelayMs);
    if (!Number.isFinite(maxDelayMs) || maxDelayMs < baseDelayMs || maxDelayMs > 300_000) {
      badOption('Glue retry.maxDelayMs', maxDelayMs, `milliseconds from baseDelayMs (${baseDelayMs}) to 300000`);
    }
    this.retry = { maxAttempts, baseDelayMs, maxDelayMs };

    checkClientOptions('Glue', 'Glue catalog', options);
    if (options.client !== undefined) {
      this.client = options.client;
    } else {
      this.client = new GlueClient({ region: options.region, endpoint: options.endpoint, maxAttempts: DEFAULT_CLIENT_MAX_ATTEMPTS });
    }
  }

  // ---------------------------------------------------------------- tables

  async getTable(name: string): Promise<TableDef | undefined> {
    checkTableName(name);
    const t = await this.readTable(name);
    return t === undefined ? undefined : this.toTableDef(t);
  }

  async listTables(): Promise<TableDef[]> {
    const out: TableDef[] = [];
    let token: string | undefined;
    const seen = new Set<string>();
    do {
      let page;
      try {
        page = await this.send(() =>
          this.client.send(
            new GetTablesCommand({ CatalogId: this.catalogId, DatabaseName: this.database, MaxResults: GET_TABLES_MAX_RESULTS, NextToken: token }),
          ),
        );
      } catch (err) {
        if (errorName(err) === 'EntityNotFoundException') return []; // no database yet: no tables
        throw this.failure(`list the tables of ${this.database}`, err);
      }
      for (const t of page.TableList ?? []) {
        if (!this.isUnderRoot(t.StorageDescriptor?.Location)) continue; // not this lake's
        out.push(this.toTableDef(t));
      }
      token = page.NextToken || undefined;
      if (token !== undefined) {
        if (seen.has(token)) throw new CatalogError(`list the tables of ${this.database}: Glue returned the same NextToken twice`, { retriable: true });
        seen.add(token);
      }
    } while (token !== undefined);
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return out;
  }

  /**
   * CreateTable (the database is created first when missing). When the table exists, columns it
   * lacks are appended with UpdateTable, conditional on the table's VersionId (Glue's optimistic
   * locking: a concurrent change makes it fail with ConcurrentModificationException, and the
   * table is read again). A different list of partition keys is refused.
   */
  async ensureTable(def: TableDef): Promise<TableDef> {
    checkTableName(def.name);
    const what = `table ${this.qualified(def.name)}`;
    for (let attempt = 1; ; attempt++) {
      const existing = await this.readTable(def.name);
      if (existing === undefined) {
        const input = this.toTableInput(def);
        await this.ensureDatabase();
        try {
          await this.send(() =>
            this.client.send(new CreateTableCommand({ CatalogId: this.catalogId, DatabaseName: this.database, TableInput: input })),
          );
          return this.toTableDef({ ...input, Name: def.name });
        } catch (err) {
          const name = errorName(err);
          if (name === 'AlreadyExistsException' && attempt < this.retry.maxAttempts) continue; // created concurrently: read it
          if (name === 'EntityNotFoundException' && attempt < this.retry.maxAttempts) {
            this.databaseReady = undefined; // the database went away since: create it again
            continue;
          }
          throw this.failure(`create ${what}`, err);
        }
      }

      const have = this.toTableDef(existing);
      const sameKeys =
        have.partitionKeys.length === def.partitionKeys.length &&
        have.partitionKeys.every((k, i) => k.name.toLowerCase() === def.partitionKeys[i]!.name.toLowerCase());
      if (!sameKeys) {
        throw new CatalogError(
          `table ${def.name} is partitioned by (${have.partitionKeys.map((k) => k.name).join(', ')}); ` +
            `cannot write it partitioned by (${def.partitionKeys.map((k) => k.name).join(', ')}) — use the table's spec or another lake`,
        );
      }
      checkColumnTypes(have, def);
      // Hive/Athena column names are case-insensitive: never append a column that differs only by case.
      const known = new Set(have.columns.map((c) => c.name.toLowerCase()));
      const added = def.columns.filter((c) => !known.has(c.name.toLowerCase()) && known.add(c.name.toLowerCase()));
      if (added.length === 0) return have;

      const input = tableInputFrom(existing);
      const sd = input.StorageDescriptor ?? {};
      input.StorageDescriptor = { ...sd, Columns: [...(sd.Columns ?? []), ...added.map(toColumn)] };
      try {
        await this.send(
          () =>
            this.client.send(
              new UpdateTableCommand({ CatalogId: this.catalogId, DatabaseName: this.database, TableInput: input, VersionId: existing.VersionId }),
            ),
          // A concurrent modification means the VersionId is stale: read the table again instead of resending.
          { retryConcurrentModification: false },
        );
        return this.toTableDef(input);
      } catch (err) {
        const name = errorName(err);
        if ((name === 'ConcurrentModificationException' || name === 'EntityNotFoundException') && attempt < this.retry.maxAttempts) {
          await this.backoff(attempt);
          continue;
        }
        throw this.failure(`add columns ${added.map((c) => c.name).join(', ')} to ${what}`, err);
      }
    }
  }

  // ------------------------------------------------------------ partitions

  async getPartitions(table: string): Promise<PartitionDef[]> {
    checkTableName(table);
    const what = `the partitions of table ${this.qualified(table)}`;
    const out: PartitionDef[] = [];
    const seen = new Set<string>();
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.send(() =>
          this.client.send(
            new GetPartitionsCommand({
              CatalogId: this.catalogId,
              DatabaseName: this.database,
              TableName: table,
              MaxResults: GET_PARTITIONS_MAX_RESULTS,
              ExcludeColumnSchema: true,
              NextToken: token,
            }),
          ),
        );
      } catch (err) {
        if (errorName(err) === 'EntityNotFoundException') return []; // as the embedded catalog: no table, no partitions
        throw this.failure(`list ${what}`, err);
      }
      for (const p of page.Partitions ?? []) out.push(this.toPartitionDef(table, p));
      token = page.NextToken || undefined;
      if (token !== undefined) {
        if (seen.has(token)) throw new CatalogError(`list ${what}: Glue returned the same NextToken twice`, { retriable: true });
        seen.add(token);
      }
    } while (token !== undefined);
    out.sort((a, b) => {
      const ka = partitionKey(a.values);
      const kb = partitionKey(b.values);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    return out;
  }

  /**
   * BatchCreatePartition in requests of at most 100 partitions, each with the table's
   * StorageDescriptor (columns, formats, SerDe) at its own location and `tributary_version=1`.
   * Partitions that exist already (per-entry AlreadyExistsException) are left as they are.
   */
  async addPartitions(table: string, partitions: Array<Pick<PartitionDef, 'values' | 'location'>>): Promise<void> {
    checkTableName(table);
    const glueTable = await this.readTable(table);
    if (glueTable === undefined) throw new CatalogError(`cannot add partitions to table ${this.qualified(table)}: it does not exist`);
    const keys = glueTable.PartitionKeys ?? [];
    const unique = new Map<string, Pick<PartitionDef, 'values' | 'location'>>();
    for (const p of partitions) {
      if (!Array.isArray(p.values) || p.values.length !== keys.length || p.values.some((v) => typeof v !== 'string')) {
        throw new CatalogError(
          `cannot add partition ${JSON.stringify(p.values)} to table ${this.qualified(table)}: expected ${keys.length} string value(s) for (${keys.map((k) => k.Name).join(', ')})`,
        );
      }
      const k = partitionKey(p.values);
      if (!unique.has(k)) unique.set(k, p);
    }
    if (unique.size === 0) return;
    const tableSd = glueTable.StorageDescriptor ?? {};
    const inputs: PartitionInput[] = [...unique.values()].map((p) => ({
      Values: [...p.values],
      StorageDescriptor: { ...storageDescriptorInput(tableSd), Location: this.toUri(p.location, `partition ${partitionKey(p.values)} of ${table}`) },
      Parameters: { [VERSION_PARAMETER]: '1' },
    }));
    for (let i = 0; i < inputs.length; i += GLUE_MAX_PARTITIONS_PER_BATCH) {
      const batch = inputs.slice(i, i + GLUE_MAX_PARTITIONS_PER_BATCH);
      await this.createPartitionBatch(table, batch);
    }
  }

  private async createPartitionBatch(table: string, batch: PartitionInput[]): Promise<void> {
    const what = `${batch.length} partition(s) of table ${this.qualified(table)}`;
    let pending = batch;
    for (let attempt = 1; ; attempt++) {
      let out;
      try {
        out = await this.send(() =>
          this.client.send(
            new BatchCreatePartitionCommand({ CatalogId: this.catalogId, DatabaseName: this.database, TableName: table, PartitionInputList: pending }),
          ),
        );
      } catch (err) {
        if (errorName(err) === 'EntityNotFoundException') {
          throw new CatalogError(`cannot add partitions to table ${this.qualified(table)}: it does not exist (${(err as Error).message})`, { cause: err });
        }
        throw this.failure(`add ${what}`, err);
      }
      const failed = (out.Errors ?? []).filter((e) => e.ErrorDetail?.ErrorCode !== 'AlreadyExistsException');
      if (failed.length === 0) return;
      // Entries that failed for a passing reason are sent again (the others were created, or existed).
      const retriable = failed.every((e) => RETRIABLE_CODES.has(e.ErrorDetail?.ErrorCode ?? ''));
      if (retriable && attempt < this.retry.maxAttempts) {
        const again = new Set(failed.map((e) => partitionKey(e.PartitionValues ?? [])));
        pending = pending.filter((p) => again.has(partitionKey(p.Values ?? [])));
        if (pending.length > 0) {
          await this.backoff(attempt);
          continue;
        }
      }
      const shown = failed
        .slice(0, 5)
        .map((e) => `${JSON.stringify(e.PartitionValues ?? [])}: ${e.ErrorDetail?.ErrorCode ?? 'error'} ${e.ErrorDetail?.ErrorMessage ?? ''}`.trim())
        .join('; ');
      const more = failed.length > 5 ? ` (and ${failed.length - 5} more)` : '';
      throw new CatalogError(`cannot add ${failed.length} partition(s) to table ${this.qualified(table)}: ${shown}${more}`, { retriable });
    }
  }

  /**
   * GetPartition, compare the version, UpdatePartition with the new location and version + 1.
   *
   * Glue has no conditional partition update: UpdatePartition overwrites whatever is there, so two
   * swaps racing between the read and the write would both "win". Within this process swaps of one
   * partition are serialized here; between processes they are kept apart by the lake's
   * PartitionGuard (a compaction takes the partition's lock before it plans and swaps), not by
   * Glue. The version check catches stale plans: a swap planned against a version that has since
   * moved fails with a CatalogError with `conflict: true`.
   */
  async swapPartitionLocation(table: string, values: string[], location: string, expectedVersion: number): Promise<PartitionDef> {
    return this.withPartition(table, values, async (current, key, what) => {
      if (current === undefined) throw new CatalogError(`table ${table} has no partition ${key}`);
      const version = versionOf(current);
      if (version !== expectedVersion) {
        throw Object.assign(
          new CatalogError(`partition ${key} of ${table} is at version ${version}, not ${expectedVersion}: another compaction swapped it first`),
          { conflict: true },
        );
      }
      const next = version + 1;
      const input: PartitionInput = {
        Values: current.Values ?? values,
        LastAccessTime: current.LastAccessTime,
        LastAnalyzedTime: current.LastAnalyzedTime,
        StorageDescriptor: { ...storageDescriptorInput(current.StorageDescriptor ?? {}), Location: this.toUri(location, what) },
        Parameters: { ...(current.Parameters ?? {}), [VERSION_PARAMETER]: String(next) },
      };
      try {
        // A blind overwrite with the same content, so resending it after a throttle or a lost response is harmless.
        await this.send(() =>
          this.client.send(
            new UpdatePartitionCommand({
              CatalogId: this.catalogId,
              DatabaseName: this.database,
              TableName: table,
              PartitionValueList: values,
              PartitionInput: input,
            }),
          ),
        );
      } catch (err) {
        if (errorName(err) === 'EntityNotFoundException') throw new CatalogError(`table ${table} has no partition ${key} (it was deleted meanwhile)`, { cause: err });
        throw this.failure(`move ${what} to ${location}`, err);
      }
      return { values: [...values], location: normalizeKey(location, what), version: next };
    });
  }

  async dropPartition(table: string, values: string[], expectedVersion: number): Promise<boolean> {
    return this.withPartition(table, values, async (current, key, what) => {
      if (current === undefined) return false;
      const version = versionOf(current);
      if (version !== expectedVersion) {
        throw Object.assign(new CatalogError(`partition ${key} of ${table} is at version ${version}, not ${expectedVersion}: it moved since it was read`), { conflict: true });
      }
      for (let attempt = 1; ; attempt++) {
        let out;
        try {
          out = await this.send(() =>
            this.client.send(
              new BatchDeletePartitionCommand({ CatalogId: this.catalogId, DatabaseName: this.database, TableName: table, PartitionsToDelete: [{ Values: values }] }),
            ),
          );
        } catch (err) {
          throw this.failure(`drop ${what}`, err);
        }
        const e = out.Errors?.[0]?.ErrorDetail;
        if (e === undefined) return true;
        if (e.ErrorCode === 'EntityNotFoundException') return false; // gone meanwhile (a retried request that took effect)
        if (RETRIABLE_CODES.has(e.ErrorCode ?? '') && attempt < this.retry.maxAttempts) {
          await this.backoff(attempt);
          continue;
        }
        throw new CatalogError(`Glue: cannot drop ${what}: ${e.ErrorCode}: ${e.ErrorMessage}`, { retriable: RETRIABLE_CODES.has(e.ErrorCode ?? '') });
      }
    });
  }

  // --------------------------------------------------------------- helpers

  /**
   * Runs `fn` with the partition as Glue has it now (undefined when absent), under this process's
   * lock of the partition: swaps and drops of one partition never interleave here; other processes
   * are kept apart by the partition guard their callers hold.
   */
  private withPartition<T>(table: string, values: string[], fn: (current: Partition | undefined, key: string, what: string) => Promise<T>): Promise<T> {
    checkTableName(table);
    const key = partitionKey(values);
    return withLock(JSON.stringify([this.catalogId ?? '', this.database, table, key]), async () => {
      const what = `partition ${key} of table ${this.qualified(table)}`;
      let current: Partition | undefined;
      try {
        const out = await this.send(() =>
          this.client.send(new GetPartitionCommand({ CatalogId: this.catalogId, DatabaseName: this.database, TableName: table, PartitionValues: values })),
        );
        current = out.Partition;
      } catch (err) {
        if (errorName(err) !== 'EntityNotFoundException') throw this.failure(`read ${what}`, err);
      }
      return fn(current, key, what);
    });
  }

  /** GetDatabase, and CreateDatabase when it is missing (AlreadyExistsException: created meanwhile). Once per instance. */
  private ensureDatabase(): Promise<void> {
    this.databaseReady ??= (async () => {
      const what = `database ${this.database}`;
      try {
        await this.send(() => this.client.send(new GetDatabaseCommand({ CatalogId: this.catalogId, Name: this.database })));
        return;
      } catch (err) {
        if (errorName(err) !== 'EntityNotFoundException') throw this.failure(`read ${what}`, err);
      }
      try {
        await this.send(() =>
          this.client.send(
            new CreateDatabaseCommand({
              CatalogId: this.catalogId,
              DatabaseInput: { Name: this.database, Description: `Tributary lake at ${this.locationRoot}`, LocationUri: `${this.locationRoot}/` },
            }),
          ),
        );
      } catch (err) {
        if (errorName(err) !== 'AlreadyExistsException') throw this.failure(`create ${what}`, err);
      }
    })().catch((err: unknown) => {
      this.databaseReady = undefined;
      throw err;
    });
    return this.databaseReady;
  }

  /** GetTable; undefined when the table (or the database) does not exist. */
  private async readTable(name: string): Promise<Table | undefined> {
    try {
      const out = await this.send(() =>
        this.client.send(new GetTableCommand({ CatalogId: this.catalogId, DatabaseName: this.database, Name: name })),
      );
      return out.Table;
    } catch (err) {
      if (errorName(err) === 'EntityNotFoundException') return undefined;
      throw this.failure(`read table ${this.qualified(name)}`, err);
    }
  }

  /**
   * Runs `call`, retrying retriable failures (throttling, concurrent modification, internal errors,
   * timeouts, network) with full-jitter exponential backoff. Rethrows the last SDK error as is;
   * callers turn it into a CatalogError (or into a result, for EntityNotFound / AlreadyExists).
   */
  private async send<T>(call: () => Promise<T>, options: { retryConcurrentModification?: boolean } = {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        const again =
          attempt < this.retry.maxAttempts &&
          isRetriable(err) &&
          !(options.retryConcurrentModification === false && errorName(err) === 'ConcurrentModificationException');
        if (!again) throw err;
        await this.backoff(attempt);
      }
    }
  }

  private backoff(attempt: number): Promise<void> {
    const cap = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** Math.min(attempt - 1, 20));
    return sleep(Math.random() * cap);
  }

  private failure(action: string, err: unknown): CatalogError {
    if (err instanceof CatalogError) return err;
    const e = (err ?? {}) as SdkErrorShape;
    const status = e.$metadata?.httpStatusCode;
    const detail = `${e.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? String(err)}`;
    return new CatalogError(`Glue: cannot ${action}: ${detail}`, { retriable: isRetriable(err), cause: err });
  }

  private qualified(table: string): string {
    return `${this.database}.${table}`;
  }

  private toTableInput(def: TableDef): TableInput {
    return {
      Name: def.name,
      TableType: 'EXTERNAL_TABLE',
      Parameters: { classification: 'parquet', ...def.parameters, EXTERNAL: 'TRUE' },
      PartitionKeys: def.partitionKeys.map(toColumn),
      StorageDescriptor: {
        Columns: def.columns.map(toColumn),
        Location: this.toUri(def.location, `table ${def.name}`),
        InputFormat: def.inputFormat,
        OutputFormat: def.outputFormat,
        SerdeInfo: { SerializationLibrary: def.serde, Parameters: { 'serialization.format': '1' } },
      },
    };
  }

  private toTableDef(t: Table | TableInput): TableDef {
    const sd = t.StorageDescriptor ?? {};
    const name = t.Name ?? '';
    return {
      name,
      columns: (sd.Columns ?? []).map(fromColumn),
      partitionKeys: (t.PartitionKeys ?? []).map(fromColumn),
      location: this.fromUri(sd.Location, `table ${this.qualified(name)}`),
      inputFormat: sd.InputFormat ?? '',
      outputFormat: sd.OutputFormat ?? '',
      serde: sd.SerdeInfo?.SerializationLibrary ?? '',
      parameters: { ...(t.Parameters ?? {}) },
    };
  }

  private toPartitionDef(table: string, p: Partition): PartitionDef {
    const values = p.Values ?? [];
    return {
      values: [...values],
      location: this.fromUri(p.StorageDescriptor?.Location, `partition ${partitionKey(values)} of table ${this.qualified(table)}`),
      version: versionOf(p),
    };
  }

  /** The absolute Glue location (with a trailing '/', as Athena wants) of a key relative to the root. */
  private toUri(key: string, what: string): string {
    const rel = normalizeKey(key, what);
    const uri = rel === '' ? `${this.locationRoot}/` : `${this.locationRoot}/${rel}/`;
    if (uri.length > MAX_LOCATION_LENGTH) throw new CatalogError(`${what}: location ${uri} is longer than Glue's ${MAX_LOCATION_LENGTH} characters`);
    return uri;
  }

  /** The key relative to the root of a Glue location; refuses one outside the root. */
  private fromUri(uri: string | undefined, what: string): string {
    if (uri === undefined || uri === '') throw new CatalogError(`${what} has no location in Glue; expected one under ${this.locationRoot}/`);
    const trimmed = uri.replace(/\/+$/, '');
    if (trimmed === this.locationRoot) return '';
    if (trimmed.startsWith(`${this.locationRoot}/`)) return trimmed.slice(this.locationRoot.length + 1);
    throw new CatalogError(
      `${what} is at ${uri} in Glue, outside this lake's root ${this.locationRoot}/; ` +
        `point locationRoot at the lake it belongs to, or use another database`,
    );
  }

  private isUnderRoot(uri: string | undefined): boolean {
    if (uri === undefined) return false;
    const trimmed = uri.replace(/\/+$/, '');
    return trimmed === this.locationRoot || trimmed.startsWith(`${this.locationRoot}/`);
  }
}

/** `s3://bucket[/prefix]` without trailing '/'; ConfigError naming the value otherwise. */
function parseLocationRoot(value: unknown): string {
  const expected = "an S3 URI such as s3://bucket/prefix (the lake root Glue's locations live under)";
  if (typeof value !== 'string' || !value.startsWith('s3://')) badOption('Glue locationRoot', value, expected);
  let parsed: { bucket: string; prefix: string };
  try {
    parsed = parseS3Uri(value);
  } catch (err) {
    throw new ConfigError(`Glue locationRoot: ${JSON.stringify(value)} is not valid: ${(err as Error).message}`, { cause: err });
  }
  const root = parsed.prefix ? `s3://${parsed.bucket}/${parsed.prefix}` : `s3://${parsed.bucket}`;
  if (!SINGLE_LINE.test(root) || root.length > 1024) badOption('Glue locationRoot', value, `${expected}, at most 1024 characters without control characters`);
  return root;
}

function checkTableName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME_RULE.test(name)) badOption('Glue table name', name, NAME_RULE_TEXT);
}

/** A storage key relative to the root: '.' and empty segments collapse; '..' is refused. */
function normalizeKey(key: string, what: string): string {
  if (typeof key !== 'string') throw new CatalogError(`${what}: location ${JSON.stringify(key)} is not a string`);
  const segs = key.split('/').filter((s) => s !== '' && s !== '.');
  if (segs.includes('..')) throw new CatalogError(`${what}: location ${JSON.stringify(key)} must not contain '..'`);
  return segs.join('/');
}

function versionOf(p: Partition): number {
  const raw = p.Parameters?.[VERSION_PARAMETER];
  if (raw === undefined || !/^\d{1,15}$/.test(raw)) return 1;
  const v = Number(raw);
  return v >= 1 ? v : 1;
}

function toColumn(c: CatalogColumn): Column {
  return c.comment === undefined ? { Name: c.name, Type: c.type } : { Name: c.name, Type: c.type, Comment: c.comment };
}

function fromColumn(c: Column): CatalogColumn {
  const out: CatalogColumn = { name: c.Name ?? '', type: c.Type ?? '' };
  if (c.Comment !== undefined) out.comment = c.Comment;
  return out;
}

/** The StorageDescriptor fields a TableInput/PartitionInput takes, copied (Location is set by the caller). */
function storageDescriptorInput(sd: StorageDescriptor): StorageDescriptor {
  const out: StorageDescriptor = {};
  if (sd.Columns !== undefined) out.Columns = sd.Columns.map((c) => ({ ...c }));
  if (sd.Location !== undefined) out.Location = sd.Location;
  if (sd.AdditionalLocations !== undefined) out.AdditionalLocations = [...sd.AdditionalLocations];
  if (sd.InputFormat !== undefined) out.InputFormat = sd.InputFormat;
  if (sd.OutputFormat !== undefined) out.OutputFormat = sd.OutputFormat;
  if (sd.Compressed !== undefined) out.Compressed = sd.Compressed;
  if (sd.NumberOfBuckets !== undefined) out.NumberOfBuckets = sd.NumberOfBuckets;
  if (sd.SerdeInfo !== undefined) out.SerdeInfo = { ...sd.SerdeInfo, Parameters: { ...(sd.SerdeInfo.Parameters ?? {}) } };
  if (sd.BucketColumns !== undefined) out.BucketColumns = [...sd.BucketColumns];
  if (sd.SortColumns !== undefined) out.SortColumns = sd.SortColumns.map((o) => ({ ...o }));
  if (sd.Parameters !== undefined) out.Parameters = { ...sd.Parameters };
  if (sd.SkewedInfo !== undefined) out.SkewedInfo = sd.SkewedInfo;
  if (sd.StoredAsSubDirectories !== undefined) out.StoredAsSubDirectories = sd.StoredAsSubDirectories;
  if (sd.SchemaReference !== undefined) out.SchemaReference = sd.SchemaReference;
  return out;
}

/** The TableInput that rewrites `t` unchanged (UpdateTable replaces the whole definition). */
function tableInputFrom(t: Table): TableInput {
  const input: TableInput = { Name: t.Name };
  if (t.Description !== undefined) input.Description = t.Description;
  if (t.Owner !== undefined) input.Owner = t.Owner;
  if (t.LastAccessTime !== undefined) input.LastAccessTime = t.LastAccessTime;
  if (t.LastAnalyzedTime !== undefined) input.LastAnalyzedTime = t.LastAnalyzedTime;
  if (t.Retention !== undefined) input.Retention = t.Retention;
  if (t.StorageDescriptor !== undefined) input.StorageDescriptor = storageDescriptorInput(t.StorageDescriptor);
  if (t.PartitionKeys !== undefined) input.PartitionKeys = t.PartitionKeys.map((c) => ({ ...c }));
  if (t.ViewOriginalText !== undefined) input.ViewOriginalText = t.ViewOriginalText;
  if (t.ViewExpandedText !== undefined) input.ViewExpandedText = t.ViewExpandedText;
  if (t.TableType !== undefined) input.TableType = t.TableType;
  if (t.Parameters !== undefined) input.Parameters = { ...t.Parameters };
  if (t.TargetTable !== undefined) input.TargetTable = t.TargetTable;
  return input;
}
