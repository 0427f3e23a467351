/**
 * An in-memory stand-in for the AWS Glue Data Catalog API, on node:http at 127.0.0.1 (a free port),
 * speaking awsJson1_1 as @aws-sdk/client-glue sends it: `POST /`, `X-Amz-Target: AWSGlue.<Operation>`,
 * `Content-Type: application/x-amz-json-1.1`, a JSON body; errors are HTTP 400 (500 for
 * InternalServiceException) with `{"__type": "<Code>", "Message": "..."}` and the code also in
 * `X-Amzn-Errortype` (the SDK's awsJson1_1 deserializer reads `__type` first, then `code`, then the header).
 *
 * Only the operations GlueCatalog uses are implemented (CreateDatabase, GetDatabase, CreateTable,
 * GetTable, GetTables, UpdateTable, BatchCreatePartition, GetPartitions, GetPartition,
 * UpdatePartition, and for cleaning up: BatchDeletePartition, DeleteTable, DeleteDatabase, which as in Glue
 * also removes the database's tables), and what the Glue API reference documents for their requests is enforced:
 * required members, JSON types (SerializationException), lengths, patterns and ranges
 * (InvalidInputException, worded like AWS's "1 validation error detected: ..."), list limits
 * (PartitionInputList ≤ 100, PartitionValueList ≤ 100), MaxResults ranges (GetTables 1–100,
 * GetPartitions 1–1000). Source: the AWS Glue Web API Reference (docs.aws.amazon.com/glue/latest/webapi/):
 * API_BatchCreatePartition, API_GetTables, API_GetPartitions, API_Column, API_StorageDescriptor,
 * API_SerDeInfo, API_PartitionValueList, API_PartitionError, API_UpdatePartition, API_BatchDeletePartition
 * (PartitionsToDelete ≤ 25), API_DeleteTable, API_DeleteDatabase.
 *
 * Pages are small on purpose (2 tables, 5 partitions by default, whatever MaxResults asks), so
 * clients must really follow NextToken. Names of databases and tables are stored lower-cased and
 * looked up case-insensitively, as Glue does. UpdateTable honours VersionId (Glue's optimistic
 * locking: a stale VersionId is a ConcurrentModificationException). Partitions are listed in
 * creation order, not sorted.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';
import { GlueClient } from '@aws-sdk/client-glue';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { any, bool, check, int, list, map, SerializationError, str, struct, timestamp, validationMessage, type Json, type JsonObject, type Shape } from './aws-shapes.ts';

// The SDK warns once per process that its 2027 releases will need Node 22; tests run on Node 20 on purpose.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export const GLUE_STANDIN_OPERATIONS = [
  'CreateDatabase',
  'GetDatabase',
  'CreateTable',
  'GetTable',
  'GetTables',
  'UpdateTable',
  'BatchCreatePartition',
  'GetPartitions',
  'GetPartition',
  'UpdatePartition',
  'BatchDeletePartition',
  'DeleteTable',
  'DeleteDatabase',
] as const;
export type GlueOperation = (typeof GLUE_STANDIN_OPERATIONS)[number];


export interface RecordedRequest {
  operation: string;
  body: JsonObject;
  /** HTTP status answered (0 when the connection was dropped on purpose). */
  status: number;
  /** Error code answered, if any. */
  error?: string;
}

export interface GlueStandInOptions {
  /** Largest GetTables page, whatever MaxResults asks (default 2). */
  tablePageSize?: number;
  /** Largest GetPartitions page, whatever MaxResults asks (default 5). */
  partitionPageSize?: number;
  /** The account ID used when a request has no CatalogId. */
  accountId?: string;
}

/** An error code to answer with, or 'network' to drop the connection without an answer. */
export type InjectedFault = 'ThrottlingException' | 'ConcurrentModificationException' | 'InternalServiceException' | 'OperationTimeoutException' | 'network' | (string & {});

interface Fault {
  code: InjectedFault;
  remaining: number;
  operation?: GlueOperation;
  message?: string;
}

interface StoredTable {
  /** The Table as GetTable returns it (VersionId included). */
  table: JsonObject;
  version: number;
  /** Insertion-ordered: GetPartitions lists in creation order. */
  partitions: Map<string, JsonObject>;
}

interface StoredDatabase {
  database: JsonObject;
  tables: Map<string, StoredTable>;
}

class GlueError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

// ------------------------------------------------------------------------------------------------
// Request shapes, from the Glue API reference.

const NameString = str(1, 255);
const CatalogIdString = str(1, 255);
const DescriptionString = str(0, 2048, 'multi');
const LocationString = str(0, 2056, 'multi');
const URIString = str(1, 1024, 'multi');
const FormatString = str(0, 128);
const ColumnTypeString = str(0, 131072);
const CommentString = str(0, 255);
const ParametersMap = map(str(1, 255), str(0, 512000, 'none'));
const ValueString = str(0, 1024, 'none');
const PartitionValueList = list(str(1, 1024, 'none'), 0, 100);
const TransactionIdString = str(1, 255, 'none');
const Token = str(undefined, undefined, 'none');

const Column = struct({ Name: NameString, Type: ColumnTypeString, Comment: CommentString, Parameters: ParametersMap }, ['Name']);
const SerDeInfo = struct({ Name: NameString, SerializationLibrary: NameString, Parameters: ParametersMap });
const Order = struct({ Column: NameString, SortOrder: int(0, 1) }, ['Column', 'SortOrder']);
const SkewedInfo = struct({ SkewedColumnNames: list(NameString), SkewedColumnValues: list(str(undefined, undefined, 'none')), SkewedColumnValueLocationMaps: map(str(undefined, undefined, 'none'), str(undefined, undefined, 'none')) });
const StorageDescriptor = struct({
  Columns: list(Column),
  Location: LocationString,
  AdditionalLocations: list(LocationString),
  InputFormat: FormatString,
  OutputFormat: FormatString,
  Compressed: bool,
  NumberOfBuckets: int(),
  SerdeInfo: SerDeInfo,
  BucketColumns: list(NameString),
  SortColumns: list(Order),
  Parameters: ParametersMap,
  SkewedInfo,
  StoredAsSubDirectories: bool,
  SchemaReference: any,
});
const TableInput = struct(
  {
    Name: NameString,
    Description: DescriptionString,
    Owner: NameString,
    LastAccessTime: timestamp,
    LastAnalyzedTime: timestamp,
    Retention: int(0),
    StorageDescriptor,
    PartitionKeys: list(Column),
    ViewOriginalText: str(0, 409600, 'none'),
    ViewExpandedText: str(0, 409600, 'none'),
    TableType: str(0, 255),
    Parameters: ParametersMap,
    TargetTable: any,
    FederatedTable: any,
    ViewDefinition: any,
  },
  ['Name'],
);
const PartitionInput = struct({ Values: list(ValueString), LastAccessTime: timestamp, StorageDescriptor, Parameters: ParametersMap, LastAnalyzedTime: timestamp });
const DatabaseInput = struct(
  { Name: NameString, Description: DescriptionString, LocationUri: URIString, Parameters: ParametersMap, CreateTableDefaultPermissions: any, TargetDatabase: any, FederatedDatabase: any },
  ['Name'],
);

const REQUESTS: Record<GlueOperation, Shape> = {
  CreateDatabase: struct({ CatalogId: CatalogIdString, DatabaseInput, Tags: map(str(1, 128, 'none'), str(0, 256, 'none')) }, ['DatabaseInput']),
  GetDatabase: struct({ CatalogId: CatalogIdString, Name: NameString }, ['Name']),
  CreateTable: struct(
    { CatalogId: CatalogIdString, DatabaseName: NameString, Name: NameString, TableInput, PartitionIndexes: list(any, 0, 3), TransactionId: TransactionIdString, OpenTableFormatInput: any },
    ['DatabaseName'],
  ),
  GetTable: struct(
    { CatalogId: CatalogIdString, DatabaseName: NameString, Name: NameString, TransactionId: TransactionIdString, QueryAsOfTime: timestamp, AuditContext: any, IncludeStatusDetails: bool, AttributesToGet: any },
    ['DatabaseName', 'Name'],
  ),
  GetTables: struct(
    {
      CatalogId: CatalogIdString,
      DatabaseName: NameString,
      Expression: str(0, 2048),
      NextToken: Token,
      MaxResults: int(1, 100),
      TransactionId: TransactionIdString,
      QueryAsOfTime: timestamp,
      AuditContext: any,
      IncludeStatusDetails: bool,
      AttributesToGet: any,
      ResourceShareType: any,
    },
    ['DatabaseName'],
  ),
  UpdateTable: struct(
    {
      CatalogId: CatalogIdString,
      DatabaseName: NameString,
      Name: NameString,
      TableInput,
      SkipArchive: bool,
      TransactionId: TransactionIdString,
      VersionId: str(1, 255),
      ViewUpdateAction: any,
      Force: bool,
      UpdateOpenTableFormatInput: any,
    },
    ['DatabaseName'],
  ),
  BatchCreatePartition: struct(
    { CatalogId: CatalogIdString, DatabaseName: NameString, TableName: NameString, PartitionInputList: list(PartitionInput, 0, 100) },
    ['DatabaseName', 'TableName', 'PartitionInputList'],
  ),
  GetPartitions: struct(
    {
      CatalogId: CatalogIdString,
      DatabaseName: NameString,
      TableName: NameString,
      Expression: str(0, 2048, 'multi'),
      NextToken: Token,
      Segment: struct({ SegmentNumber: int(0), TotalSegments: int(1, 10) }, ['SegmentNumber', 'TotalSegments']),
      MaxResults: int(1, 1000),
      ExcludeColumnSchema: bool,
      TransactionId: TransactionIdString,
      QueryAsOfTime: timestamp,
      AuditContext: any,
    },
    ['DatabaseName', 'TableName'],
  ),
  GetPartition: struct(
    { CatalogId: CatalogIdString, DatabaseName: NameString, TableName: NameString, PartitionValues: PartitionValueList, AuditContext: any },
    ['DatabaseName', 'TableName', 'PartitionValues'],
  ),
  UpdatePartition: struct(
    { CatalogId: CatalogIdString, DatabaseName: NameString, TableName: NameString, PartitionValueList, PartitionInput },
    ['DatabaseName', 'TableName', 'PartitionValueList', 'PartitionInput'],
  ),
  BatchDeletePartition: struct(
    { CatalogId: CatalogIdString, DatabaseName: NameString, TableName: NameString, PartitionsToDelete: list(struct({ Values: list(ValueString) }, ['Values']), 0, 25) },
    ['DatabaseName', 'TableName', 'PartitionsToDelete'],
  ),
  DeleteTable: struct({ CatalogId: CatalogIdString, DatabaseName: NameString, Name: NameString, TransactionId: TransactionIdString }, ['DatabaseName', 'Name']),
  DeleteDatabase: struct({ CatalogId: CatalogIdString, Name: NameString }, ['Name']),
};

function validate(operation: GlueOperation, body: JsonObject): void {
  const violations: string[] = [];
  try {
    check(REQUESTS[operation], body, '', violations);
  } catch (err) {
    if (err instanceof SerializationError) throw new GlueError('SerializationException', err.message);
    throw err;
  }
  const message = validationMessage(violations);
  if (message !== undefined) throw new GlueError('InvalidInputException', message);
}

// ------------------------------------------------------------------------------------------------

const clone = <T>(v: T): T => structuredClone(v);
const now = () => Date.now() / 1000;

function encodeToken(scope: string, offset: number): string {
  return Buffer.from(JSON.stringify({ s: scope, o: offset })).toString('base64url');
}

function decodeToken(token: Json | undefined, scope: string): number {
  if (token === undefined || token === null || token === '') return 0;
  try {
    const t = JSON.parse(Buffer.from(String(token), 'base64url').toString('utf8')) as { s?: unknown; o?: unknown };
    if (t.s === scope && typeof t.o === 'number' && Number.isSafeInteger(t.o) && t.o >= 0) return t.o;
  } catch {
    // fall through
  }
  throw new GlueError('InvalidInputException', 'Invalid pagination token (NextToken) for this request');
}

export class GlueStandIn {
  /** e.g. http://127.0.0.1:40123 */
  endpoint = '';
  /** Every request that named a known operation, in arrival order. */
  readonly requests: RecordedRequest[] = [];
  readonly accountId: string;
  private readonly tablePageSize: number;
  private readonly partitionPageSize: number;
  private readonly catalogs = new Map<string, Map<string, StoredDatabase>>();
  private readonly faults: Fault[] = [];
  private readonly entryFaults = new Map<string, { code: string; message: string }>();
  private readonly clients: GlueClient[] = [];
  private readonly server = createServer((req, res) => void this.handle(req, res));

  constructor(options: GlueStandInOptions = {}) {
    this.tablePageSize = options.tablePageSize ?? 2;
    this.partitionPageSize = options.partitionPageSize ?? 5;
    this.accountId = options.accountId ?? '123456789012';
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A client for this server: region us-east-1, dummy credentials, `maxAttempts` (default 1: no SDK retries). */
  client(options: { maxAttempts?: number } = {}): GlueClient {
    const c = new GlueClient({
      endpoint: this.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDSTANDIN', secretAccessKey: 'standin-secret' },
      requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 30_000 }),
      maxAttempts: options.maxAttempts ?? 1,
    });
    this.clients.push(c);
    return c;
  }

  /** Answers the next `count` requests (of `operation`, or any) with `code`, or drops them ('network'). */
  failNext(count: number, code: InjectedFault, options: { operation?: GlueOperation; message?: string } = {}): void {
    this.faults.push({ code, remaining: count, operation: options.operation, message: options.message });
  }

  /** Forgets faults queued by failNext that were not used up. */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Makes BatchCreatePartition report a per-entry error for the partition with `values` (until cleared). */
  failPartitionEntry(values: string[], code: string, message = 'injected failure'): void {
    this.entryFaults.set(JSON.stringify(values), { code, message });
  }

  clearPartitionEntryFaults(): void {
    this.entryFaults.clear();
  }

  /** Successful (HTTP 200) requests of `operation`. */
  succeeded(operation: GlueOperation): RecordedRequest[] {
    return this.requests.filter((r) => r.operation === operation && r.status === 200);
  }

  /** The stored table as GetTable would return it, or undefined. */
  storedTable(database: string, table: string, catalogId = this.accountId): JsonObject | undefined {
    const t = this.catalogs.get(catalogId)?.get(database.toLowerCase())?.tables.get(table.toLowerCase());
    return t === undefined ? undefined : clone(t.table);
  }

  /** The stored partitions of a table, in creation order. */
  storedPartitions(database: string, table: string, catalogId = this.accountId): JsonObject[] {
    const t = this.catalogs.get(catalogId)?.get(database.toLowerCase())?.tables.get(table.toLowerCase());
    return t === undefined ? [] : [...t.partitions.values()].map(clone);
  }

  storedDatabase(database: string, catalogId = this.accountId): JsonObject | undefined {
    const d = this.catalogs.get(catalogId)?.get(database.toLowerCase());
    return d === undefined ? undefined : clone(d.database);
  }

  // ---------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let record: RecordedRequest | undefined;
    const answer = (status: number, body: JsonObject, error?: string) => {
      if (record) {
        record.status = status;
        if (error) record.error = error;
      }
      const payload = JSON.stringify(body);
      const headers: Record<string, string | number> = {
        'Content-Type': 'application/x-amz-json-1.1',
        'Content-Length': Buffer.byteLength(payload),
        'x-amzn-RequestId': randomUUID(),
      };
      if (error) headers['X-Amzn-Errortype'] = error;
      res.writeHead(status, headers);
      res.end(payload);
    };
    const fail = (e: GlueError) => answer(e.status, { __type: e.code, Message: e.message }, e.code);

    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > 10 * 1024 * 1024) throw new GlueError('SerializationException', 'Request body larger than 10 MiB', 413);
        chunks.push(chunk as Buffer);
      }
      if (req.method !== 'POST' || (req.url ?? '/').split('?')[0] !== '/') {
        throw new GlueError('UnknownOperationException', `${req.method} ${req.url}: Glue takes POST / with X-Amz-Target`, 404);
      }
      const target = String(req.headers['x-amz-target'] ?? '');
      const m = /^AWSGlue\.([A-Za-z]+)$/.exec(target);
      const operation = m?.[1];
      if (operation === undefined || !(GLUE_STANDIN_OPERATIONS as readonly string[]).includes(operation)) {
        throw new GlueError('UnknownOperationException', target ? `Unknown operation ${target}` : 'Missing X-Amz-Target header');
      }
      const op = operation as GlueOperation;
      record = { operation: op, body: {}, status: 0 };
      this.requests.push(record);

      const contentType = String(req.headers['content-type'] ?? '');
      if (contentType.split(';')[0]!.trim() !== 'application/x-amz-json-1.1') {
        throw new GlueError('SerializationException', `Content-Type must be application/x-amz-json-1.1, got ${JSON.stringify(contentType)}`);
      }
      if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) {
        throw new GlueError('MissingAuthenticationTokenException', 'Missing Authentication Token (a SigV4 Authorization header)');
      }
      let body: Json;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json;
      } catch (err) {
        throw new GlueError('SerializationException', `Request body is not JSON: ${(err as Error).message}`);
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new GlueError('SerializationException', 'Request body must be a JSON object');
      record.body = body;

      const fault = this.faults.find((f) => f.remaining > 0 && (f.operation === undefined || f.operation === op));
      if (fault !== undefined) {
        fault.remaining--;
        if (fault.code === 'network') {
          record.status = 0;
          req.socket.destroy();
          return;
        }
        const status = fault.code === 'InternalServiceException' ? 500 : 400;
        throw new GlueError(fault.code, fault.message ?? `injected ${fault.code}`, status);
      }

      validate(op, body);
      answer(200, this.dispatch(op, body));
    } catch (err) {
      if (err instanceof GlueError) fail(err);
      else fail(new GlueError('InternalServiceException', `stand-in bug: ${(err as Error).stack ?? String(err)}`, 500));
    }
  }

  private dispatch(op: GlueOperation, b: JsonObject): JsonObject {
    switch (op) {
      case 'CreateDatabase':
        return this.createDatabase(b);
      case 'GetDatabase':
        return { Database: clone(this.db(b, String(b.Name)).database) };
      case 'CreateTable':
        return this.createTable(b);
      case 'GetTable':
        return { Table: clone(this.table(b, String(b.Name)).table) };
      case 'GetTables':
        return this.getTables(b);
      case 'UpdateTable':
        return this.updateTable(b);
      case 'BatchCreatePartition':
        return this.batchCreatePartition(b);
      case 'GetPartitions':
        return this.getPartitions(b);
      case 'GetPartition':
        return { Partition: clone(this.partition(b, b.PartitionValues as string[])) };
      case 'UpdatePartition':
        return this.updatePartition(b);
      case 'BatchDeletePartition': {
        const t = this.table(b, String(b.TableName));
        const errors: JsonObject[] = [];
        for (const entry of b.PartitionsToDelete as JsonObject[]) {
          const values = entry.Values as string[];
          this.checkValueCount(t, values);
          if (!t.partitions.delete(JSON.stringify(values))) {
            errors.push({ PartitionValues: [...values], ErrorDetail: { ErrorCode: 'EntityNotFoundException', ErrorMessage: 'Cannot find partition.' } });
          }
        }
        return { Errors: errors };
      }
      case 'DeleteTable':
        this.table(b, String(b.Name));
        this.db(b, String(b.DatabaseName)).tables.delete(String(b.Name).toLowerCase());
        return {};
      case 'DeleteDatabase':
        this.db(b, String(b.Name));
        this.catalog(b).delete(String(b.Name).toLowerCase());
        return {};
    }
  }

  private catalog(b: JsonObject): Map<string, StoredDatabase> {
    const id = typeof b.CatalogId === 'string' ? b.CatalogId : this.accountId;
    let c = this.catalogs.get(id);
    if (c === undefined) this.catalogs.set(id, (c = new Map()));
    return c;
  }

  private db(b: JsonObject, name: string): StoredDatabase {
    const d = this.catalog(b).get(name.toLowerCase());
    if (d === undefined) throw new GlueError('EntityNotFoundException', `Database ${name} not found.`);
    return d;
  }

  private table(b: JsonObject, name: string): StoredTable {
    const t = this.db(b, String(b.DatabaseName)).tables.get(name.toLowerCase());
    if (t === undefined) throw new GlueError('EntityNotFoundException', `Table ${name} not found.`);
    return t;
  }

  private partition(b: JsonObject, values: string[]): JsonObject {
    const t = this.table(b, String(b.TableName));
    this.checkValueCount(t, values);
    const p = t.partitions.get(JSON.stringify(values));
    if (p === undefined) throw new GlueError('EntityNotFoundException', 'Cannot find partition.');
    return p;
  }

  private createDatabase(b: JsonObject): JsonObject {
    const input = b.DatabaseInput as JsonObject;
    const name = String(input.Name).toLowerCase();
    const catalog = this.catalog(b);
    if (catalog.has(name)) throw new GlueError('AlreadyExistsException', 'Database already exists.');
    const database: JsonObject = { ...clone(input), Name: name, CreateTime: now(), CatalogId: typeof b.CatalogId === 'string' ? b.CatalogId : this.accountId };
    catalog.set(name, { database, tables: new Map() });
    return {};
  }

  private storedTableFrom(b: JsonObject, input: JsonObject, version: number, createTime: number): JsonObject {
    const name = String(input.Name).toLowerCase();
    return {
      ...clone(input),
      Name: name,
      DatabaseName: String(b.DatabaseName).toLowerCase(),
      CreateTime: createTime,
      UpdateTime: now(),
      IsRegisteredWithLakeFormation: false,
      CatalogId: typeof b.CatalogId === 'string' ? b.CatalogId : this.accountId,
      VersionId: String(version),
    };
  }

  private createTable(b: JsonObject): JsonObject {
    const input = b.TableInput as JsonObject | undefined;
    if (input === undefined || input === null) {
      throw new GlueError('InvalidInputException', b.OpenTableFormatInput ? 'OpenTableFormatInput is not supported by this stand-in' : 'TableInput is required');
    }
    if (typeof b.Name === 'string' && b.Name.toLowerCase() !== String(input.Name).toLowerCase()) {
      throw new GlueError('InvalidInputException', 'Name and TableInput.Name differ');
    }
    const d = this.db(b, String(b.DatabaseName));
    const name = String(input.Name).toLowerCase();
    if (d.tables.has(name)) throw new GlueError('AlreadyExistsException', 'Table already exists.');
    d.tables.set(name, { table: this.storedTableFrom(b, input, 0, now()), version: 0, partitions: new Map() });
    return {};
  }

  private updateTable(b: JsonObject): JsonObject {
    const input = b.TableInput as JsonObject | undefined;
    if (input === undefined || input === null) throw new GlueError('InvalidInputException', 'TableInput is required');
    const t = this.table(b, String(input.Name));
    if (typeof b.VersionId === 'string' && b.VersionId !== String(t.version)) {
      throw new GlueError('ConcurrentModificationException', `Update table failed due to concurrent modifications: VersionId ${b.VersionId} is not the current ${t.version}.`);
    }
    t.version++;
    t.table = this.storedTableFrom(b, input, t.version, t.table.CreateTime as number);
    return {};
  }

  private getTables(b: JsonObject): JsonObject {
    const d = this.db(b, String(b.DatabaseName));
    let tables = [...d.tables.values()].map((t) => t.table);
    if (typeof b.Expression === 'string' && b.Expression !== '') {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${b.Expression})$`);
      } catch {
        throw new GlueError('InvalidInputException', `Expression ${b.Expression} is not a valid pattern`);
      }
      tables = tables.filter((t) => re.test(String(t.Name)));
    }
    const scope = `tables/${String(b.CatalogId ?? '')}/${String(b.DatabaseName).toLowerCase()}`;
    const offset = decodeToken(b.NextToken, scope);
    const size = Math.min(this.tablePageSize, typeof b.MaxResults === 'number' ? b.MaxResults : 100);
    const page = tables.slice(offset, offset + size).map(clone);
    const out: JsonObject = { TableList: page };
    if (offset + size < tables.length) out.NextToken = encodeToken(scope, offset + size);
    return out;
  }

  private checkValueCount(t: StoredTable, values: Json | undefined): asserts values is string[] {
    const keys = (t.table.PartitionKeys as Json[] | undefined) ?? [];
    if (!Array.isArray(values)) throw new GlueError('InvalidInputException', 'Partition values are required.');
    if (values.length !== keys.length) {
      throw new GlueError('InvalidInputException', `The number of partition keys do not match the number of partition values (${keys.length} keys, ${values.length} values).`);
    }
  }

  private batchCreatePartition(b: JsonObject): JsonObject {
    const t = this.table(b, String(b.TableName));
    const inputs = b.PartitionInputList as JsonObject[];
    for (const input of inputs) this.checkValueCount(t, input.Values);
    const errors: JsonObject[] = [];
    for (const input of inputs) {
      const values = input.Values as string[];
      const key = JSON.stringify(values);
      const injected = this.entryFaults.get(key);
      if (injected !== undefined) {
        errors.push({ PartitionValues: [...values], ErrorDetail: { ErrorCode: injected.code, ErrorMessage: injected.message } });
        continue;
      }
      if (t.partitions.has(key)) {
        errors.push({ PartitionValues: [...values], ErrorDetail: { ErrorCode: 'AlreadyExistsException', ErrorMessage: 'Partition already exists.' } });
        continue;
      }
      t.partitions.set(key, this.storedPartitionFrom(b, input, now()));
    }
    return { Errors: errors };
  }

  private storedPartitionFrom(b: JsonObject, input: JsonObject, creationTime: number): JsonObject {
    return {
      ...clone(input),
      DatabaseName: String(b.DatabaseName).toLowerCase(),
      TableName: String(b.TableName).toLowerCase(),
      CreationTime: creationTime,
      CatalogId: typeof b.CatalogId === 'string' ? b.CatalogId : this.accountId,
    };
  }

  private getPartitions(b: JsonObject): JsonObject {
    const t = this.table(b, String(b.TableName));
    if (b.Expression !== undefined) throw new GlueError('InvalidInputException', 'Expression is not supported by this stand-in');
    if (b.Segment !== undefined) throw new GlueError('InvalidInputException', 'Segment is not supported by this stand-in');
    const all = [...t.partitions.values()];
    const scope = `partitions/${String(b.CatalogId ?? '')}/${String(b.DatabaseName).toLowerCase()}/${String(b.TableName).toLowerCase()}`;
    const offset = decodeToken(b.NextToken, scope);
    const size = Math.min(this.partitionPageSize, typeof b.MaxResults === 'number' ? b.MaxResults : 1000);
    const page = all.slice(offset, offset + size).map((p) => {
      const out = clone(p);
      if (b.ExcludeColumnSchema === true && out.StorageDescriptor && typeof out.StorageDescriptor === 'object') {
        delete (out.StorageDescriptor as JsonObject).Columns;
      }
      return out;
    });
    const out: JsonObject = { Partitions: page };
    if (offset + size < all.length) out.NextToken = encodeToken(scope, offset + size);
    return out;
  }

  private updatePartition(b: JsonObject): JsonObject {
    const t = this.table(b, String(b.TableName));
    const values = b.PartitionValueList as string[];
    this.checkValueCount(t, values);
    const input = b.PartitionInput as JsonObject;
    if (input.Values !== undefined && JSON.stringify(input.Values) !== JSON.stringify(values)) {
      throw new GlueError('InvalidInputException', 'The Values of a partition cannot be changed; delete and recreate the partition.');
    }
    const current = this.partition(b, values);
    t.partitions.set(JSON.stringify(values), this.storedPartitionFrom(b, { ...input, Values: [...values] }, current.CreationTime as number));
    return {};
  }
}

/** Starts a stand-in on 127.0.0.1 (a free port) and stops it in after() (the surrounding test, or the file). */
export async function startGlueStandIn(options: GlueStandInOptions = {}): Promise<GlueStandIn> {
  const standIn = new GlueStandIn(options);
  after(() => standIn.close());
  await standIn.listen();
  return standIn;
}
