/**
 * An in-memory stand-in for the Amazon Athena query API, on node:http at 127.0.0.1 (a free port),
 * speaking awsJson1_1 as @aws-sdk/client-athena sends it: `POST /`, `X-Amz-Target:
 * AmazonAthena.<Operation>`, `Content-Type: application/x-amz-json-1.1`, a JSON body; errors are
 * HTTP 400 (500 for InternalServerException) with `{"__type": "<Code>", "Message": "..."}`.
 *
 * Implemented: StartQueryExecution, GetQueryExecution, GetQueryResults, StopQueryExecution, with
 * what the Athena API reference (and its service model, athena-2017-05-18) documents for their
 * requests enforced: required members (QueryString, QueryExecutionId), JSON types
 * (SerializationException), lengths, patterns, ranges and enums (QueryString 1..262,144 characters,
 * ClientRequestToken 32..128, WorkGroup `[a-zA-Z0-9._-]{1,128}`, Database 1..255, MaxResults
 * 1..1000, NextToken 1..1024, QueryExecutionId 1..128 `\S+`), reported as InvalidRequestException
 * ("Indicates that something is wrong with the input to the request. For example, a required
 * parameter may be missing or out of range."). Also as Athena does:
 * - A request without ClientRequestToken fails (the SDKs always generate one; "If you are not using
 *   the AWS SDK or the AWS CLI, you must provide this token or the action will fail"); the same token
 *   again returns the same QueryExecutionId, or "Idempotent parameters do not match" when the
 *   request differs.
 * - A syntax error is refused at StartQueryExecution (InvalidRequestException, "line L:C: …");
 *   errors found while running (unknown table or column) make the query FAILED with the reason in
 *   Status.StateChangeReason and Status.AthenaError.
 * - Unknown workgroup, no output location (neither in the request nor the workgroup), an unknown
 *   QueryExecutionId, results asked before SUCCEEDED, and a NextToken that is not this query's are
 *   InvalidRequestException.
 * - State goes QUEUED → RUNNING → SUCCEEDED/FAILED as GetQueryExecution is polled (`pollsPerState`
 *   answers in each of QUEUED and RUNNING); StopQueryExecution makes an unfinished query CANCELLED.
 * - GetQueryResults pages hold at most MaxResults rows (default 1000) and, for DML (SELECT), the first
 *   row of the first page is the column labels; values are VarCharValue strings in Athena's text
 *   forms (timestamps `YYYY-MM-DD HH:MM:SS.fff`, doubles as Java prints them), NULL an empty Datum;
 *   ColumnInfo carries Athena's type names; UpdateCount is the executor's count of rows written by a
 *   CREATE TABLE AS SELECT or INSERT INTO (0 otherwise).
 *
 * The SQL itself is run by the `execute` function the test supplies (DuckDB over a lake).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';
import { AthenaClient } from '@aws-sdk/client-athena';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { QueryResult } from '../../src/query/lake-query.ts';
import { any, bool, check, enumOf, int, list, patterned, SerializationError, str, struct, validationMessage, type Json, type JsonObject, type Shape } from './aws-shapes.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export const ATHENA_STANDIN_OPERATIONS = ['StartQueryExecution', 'GetQueryExecution', 'GetQueryResults', 'StopQueryExecution'] as const;
export type AthenaOperation = (typeof ATHENA_STANDIN_OPERATIONS)[number];

/**
 * Runs one statement for the stand-in; a thrown error's message becomes the FAILED reason.
 * `updateCount` is what GetQueryResults reports as UpdateCount: "the number of rows inserted with a
 * CREATE TABLE AS SELECT, INSERT INTO, or UNLOAD statement" (0 when not given, as for a SELECT).
 */
export type AthenaExecutor = (sql: string, context: { database?: string; catalog?: string }) => Promise<QueryResult & { updateCount?: number }>;

export interface AthenaStandInOptions {
  execute: AthenaExecutor;
  /** Workgroups and their result locations; default `{ primary: { outputLocation: 's3://athena-standin-results/' } }`. */
  workGroups?: Record<string, { outputLocation?: string }>;
  /** GetQueryExecution answers given in each of QUEUED and RUNNING before the final state (default 1). */
  pollsPerState?: number;
  /** Databases that exist; when given, a query in another database FAILS with SCHEMA_NOT_FOUND. */
  databases?: string[];
}

export interface RecordedAthenaRequest {
  operation: string;
  body: JsonObject;
  status: number;
  error?: string;
}

/** One query as the stand-in holds it. */
export interface StandInExecution {
  id: string;
  query: string;
  token: string;
  fingerprint: string;
  database?: string;
  catalog?: string;
  workGroup: string;
  outputLocation: string;
  statementType: 'DML' | 'DDL' | 'UTILITY';
  state: 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
  /** States answered by GetQueryExecution, in order. */
  answered: string[];
  reason?: string;
  submitted: number;
  completed?: number;
  polls: number;
  outcome?: { result?: QueryResult & { updateCount?: number }; error?: string };
  /** The execution in flight (settles when `outcome` is set). */
  running?: Promise<unknown>;
}

class AthenaError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly athenaErrorCode?: string,
  ) {
    super(message);
  }
}

// ------------------------------------------------------------------------------------------------
// Request shapes, from the Athena service model (athena-2017-05-18).

const QueryExecutionId = patterned('\\S+', 1, 128);
const ResultConfiguration = struct({
  OutputLocation: str(undefined, undefined, 'none'),
  EncryptionConfiguration: struct({ EncryptionOption: enumOf('SSE_S3', 'SSE_KMS', 'CSE_KMS'), KmsKey: str(undefined, undefined, 'none') }, ['EncryptionOption']),
  ExpectedBucketOwner: patterned('[0-9]+', 12, 12),
  AclConfiguration: struct({ S3AclOption: enumOf('BUCKET_OWNER_FULL_CONTROL') }, ['S3AclOption']),
});
const REQUESTS: Record<AthenaOperation, Shape> = {
  StartQueryExecution: struct(
    {
      QueryString: str(1, 262_144, 'none'),
      ClientRequestToken: str(32, 128, 'none'),
      QueryExecutionContext: struct({ Database: str(1, 255, 'none'), Catalog: str(1, 256) }),
      ResultConfiguration,
      WorkGroup: patterned('[a-zA-Z0-9._-]{1,128}'),
      ExecutionParameters: list(str(1, 1024, 'none'), 1),
      ResultReuseConfiguration: struct({ ResultReuseByAgeConfiguration: struct({ Enabled: bool, MaxAgeInMinutes: int(0, 10080) }, ['Enabled']) }),
      EngineConfiguration: any,
    },
    ['QueryString'],
  ),
  GetQueryExecution: struct({ QueryExecutionId }, ['QueryExecutionId']),
  GetQueryResults: struct(
    { QueryExecutionId, NextToken: str(1, 1024, 'none'), MaxResults: int(1, 1000), QueryResultType: enumOf('DATA_MANIFEST', 'DATA_ROWS') },
    ['QueryExecutionId'],
  ),
  StopQueryExecution: struct({ QueryExecutionId }, ['QueryExecutionId']),
};

function validate(op: AthenaOperation, body: JsonObject): void {
  const violations: string[] = [];
  try {
    check(REQUESTS[op], body, '', violations);
  } catch (err) {
    if (err instanceof SerializationError) throw new AthenaError('SerializationException', err.message);
    throw err;
  }
  const message = validationMessage(violations);
  if (message !== undefined) throw new AthenaError('InvalidRequestException', message);
}

// ------------------------------------------------------------------------------------------------
// Athena's text forms of values.

/** DuckDB type (as LakeQuery reports it) → Athena's ColumnInfo Type, Precision and Scale. */
export function athenaColumnType(duck: string): { type: string; precision: number; scale: number } {
  const t = duck.toUpperCase();
  const dec = /^DECIMAL\((\d+),\s*(\d+)\)$/.exec(t);
  if (dec) return { type: 'decimal', precision: Number(dec[1]), scale: Number(dec[2]) };
  if (t.endsWith('[]') || /^[A-Z_]+\[\d+\]$/.test(t) || t.startsWith('LIST')) return { type: 'array', precision: 0, scale: 0 };
  if (t.startsWith('STRUCT')) return { type: 'row', precision: 0, scale: 0 };
  if (t.startsWith('MAP')) return { type: 'map', precision: 0, scale: 0 };
  if (t.startsWith('TIMESTAMP WITH TIME ZONE')) return { type: 'timestamp with time zone', precision: 3, scale: 0 };
  if (t.startsWith('TIMESTAMP')) return { type: 'timestamp', precision: 3, scale: 0 };
  const simple: Record<string, [string, number]> = {
    VARCHAR: ['varchar', 2147483647],
    UUID: ['varchar', 2147483647],
    JSON: ['json', 0],
    BIGINT: ['bigint', 19],
    UINTEGER: ['bigint', 19],
    INTEGER: ['integer', 10],
    USMALLINT: ['integer', 10],
    SMALLINT: ['smallint', 5],
    UTINYINT: ['smallint', 5],
    TINYINT: ['tinyint', 3],
    DOUBLE: ['double', 17],
    FLOAT: ['real', 7],
    BOOLEAN: ['boolean', 0],
    DATE: ['date', 0],
    TIME: ['time', 3],
    BLOB: ['varbinary', 2147483647],
    INTERVAL: ['interval day to second', 0],
  };
  if (t === 'HUGEINT' || t === 'UBIGINT' || t === 'UHUGEINT') return { type: 'decimal', precision: 38, scale: 0 };
  const s = simple[t];
  return s ? { type: s[0], precision: s[1], scale: 0 } : { type: 'varchar', precision: 2147483647, scale: 0 };
}

/** A double as Java's Double.toString prints it (Athena's engine is Java): 2.0, 0.5, 1.0E7, 1.5E-4. */
export function javaDouble(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? 'Infinity' : '-Infinity';
  if (n === 0) return Object.is(n, -0) ? '-0.0' : '0.0';
  const abs = Math.abs(n);
  if (abs >= 1e-3 && abs < 1e7) {
    const s = String(n);
    return s.includes('.') ? s : `${s}.0`;
  }
  const [mant, exp] = n.toExponential().split('e') as [string, string];
  return `${mant.includes('.') ? mant : `${mant}.0`}E${exp.replace('+', '')}`;
}

/** Presto's text of nested values: arrays `[1, 2]`, rows and maps `{k=v}`. */
function nestedText(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map(nestedText).join(', ')}]`;
  if (typeof v === 'object') return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}=${nestedText(x)}`).join(', ')}}`;
  return String(v);
}

/** A JSON value from LakeQuery as Athena's VarCharValue for `athenaType`; undefined for NULL. */
export function athenaText(v: unknown, athenaType: string): string | undefined {
  if (v === null || v === undefined) return undefined;
  switch (athenaType) {
    case 'double':
    case 'real':
      return typeof v === 'number' ? javaDouble(v) : String(v);
    case 'timestamp': {
      // Athena prints milliseconds always: 2026-11-21 10:00:00.120
      const m = /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.(\d+))?$/.exec(String(v));
      if (!m) return String(v);
      const frac = (m[2] ?? '').padEnd(3, '0');
      return `${m[1]}.${frac}`;
    }
    case 'array':
    case 'row':
    case 'map':
      return nestedText(v);
    default:
      return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
}

function statementTypeOf(sql: string): 'DML' | 'DDL' | 'UTILITY' {
  const word = /^[\s(]*([A-Za-z]+)/.exec(sql.replace(/^\s*(--[^\n]*\n\s*|\/\*[\s\S]*?\*\/\s*)*/, ''))?.[1]?.toUpperCase() ?? '';
  if (['CREATE', 'DROP', 'ALTER', 'MSCK'].includes(word)) return 'DDL';
  if (['SHOW', 'DESCRIBE', 'DESC', 'EXPLAIN', 'USE'].includes(word)) return 'UTILITY';
  return 'DML';
}

function encodeToken(id: string, offset: number): string {
  return Buffer.from(JSON.stringify({ q: id, o: offset })).toString('base64url');
}

function decodeToken(token: Json | undefined, id: string): number {
  if (token === undefined || token === null) return 0;
  try {
    const t = JSON.parse(Buffer.from(String(token), 'base64url').toString('utf8')) as { q?: unknown; o?: unknown };
    if (t.q === id && typeof t.o === 'number' && Number.isSafeInteger(t.o) && t.o > 0) return t.o;
  } catch {
    // fall through
  }
  throw new AthenaError('InvalidRequestException', 'The NextToken is not valid for this query execution.', 400, 'INVALID_INPUT');
}

export class AthenaStandIn {
  /** e.g. http://127.0.0.1:40123 */
  endpoint = '';
  /** Every request that named a known operation, in arrival order. */
  readonly requests: RecordedAthenaRequest[] = [];
  readonly executions = new Map<string, StandInExecution>();
  private readonly byToken = new Map<string, string>();
  private readonly workGroups: Record<string, { outputLocation?: string }>;
  private readonly pollsPerState: number;
  private readonly databases: Set<string> | undefined;
  private readonly faults: Array<{ code: string; remaining: number; operation?: AthenaOperation }> = [];
  private readonly clients: AthenaClient[] = [];
  private readonly server = createServer((req, res) => void this.handle(req, res));
  private parser: Promise<{ instance: DuckDBInstance; conn: DuckDBConnection }> | undefined;

  constructor(private readonly options: AthenaStandInOptions) {
    this.workGroups = options.workGroups ?? { primary: { outputLocation: 's3://athena-standin-results/' } };
    this.pollsPerState = options.pollsPerState ?? 1;
    this.databases = options.databases === undefined ? undefined : new Set(options.databases.map((d) => d.toLowerCase()));
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
    const p = await this.parser;
    p?.conn.closeSync();
    p?.instance.closeSync();
  }

  /** A client for this server: region us-east-1, dummy credentials, `maxAttempts` (default 1: no SDK retries). */
  client(options: { maxAttempts?: number } = {}): AthenaClient {
    const c = new AthenaClient({
      endpoint: this.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDSTANDIN', secretAccessKey: 'standin-secret' },
      requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 60_000 }),
      maxAttempts: options.maxAttempts ?? 1,
    });
    this.clients.push(c);
    return c;
  }

  /**
   * Answers the next `count` requests (of `operation`, or any) with error `code` (HTTP 500 for
   * InternalServerException), drops them unanswered ('network'), or carries them out and then drops
   * the answer ('network-after').
   */
  failNext(count: number, code: string, options: { operation?: AthenaOperation } = {}): void {
    this.faults.push({ code, remaining: count, operation: options.operation });
  }

  /** Successful (HTTP 200) requests of `operation`. */
  succeeded(operation: AthenaOperation): RecordedAthenaRequest[] {
    return this.requests.filter((r) => r.operation === operation && r.status === 200);
  }

  // ---------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let record: RecordedAthenaRequest | undefined;
    const answer = (status: number, body: JsonObject, error?: string) => {
      if (record) {
        record.status = status;
        if (error) record.error = error;
      }
      const payload = JSON.stringify(body);
      const headers: Record<string, string | number> = { 'Content-Type': 'application/x-amz-json-1.1', 'Content-Length': Buffer.byteLength(payload), 'x-amzn-RequestId': randomUUID() };
      if (error) headers['X-Amzn-Errortype'] = error;
      res.writeHead(status, headers);
      res.end(payload);
    };
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > 10 * 1024 * 1024) throw new AthenaError('SerializationException', 'Request body larger than 10 MiB', 413);
        chunks.push(chunk as Buffer);
      }
      if (req.method !== 'POST' || (req.url ?? '/').split('?')[0] !== '/') throw new AthenaError('UnknownOperationException', `${req.method} ${req.url}: Athena takes POST / with X-Amz-Target`, 404);
      const target = String(req.headers['x-amz-target'] ?? '');
      const operation = /^AmazonAthena\.([A-Za-z]+)$/.exec(target)?.[1];
      if (operation === undefined || !(ATHENA_STANDIN_OPERATIONS as readonly string[]).includes(operation)) {
        throw new AthenaError('UnknownOperationException', target ? `Unknown operation ${target}` : 'Missing X-Amz-Target header');
      }
      const op = operation as AthenaOperation;
      record = { operation: op, body: {}, status: 0 };
      this.requests.push(record);
      if (String(req.headers['content-type'] ?? '').split(';')[0]!.trim() !== 'application/x-amz-json-1.1') {
        throw new AthenaError('SerializationException', `Content-Type must be application/x-amz-json-1.1, got ${JSON.stringify(req.headers['content-type'] ?? '')}`);
      }
      if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) {
        throw new AthenaError('MissingAuthenticationTokenException', 'Missing Authentication Token (a SigV4 Authorization header)', 403);
      }
      let body: Json;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json;
      } catch (err) {
        throw new AthenaError('SerializationException', `Request body is not JSON: ${(err as Error).message}`);
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new AthenaError('SerializationException', 'Request body must be a JSON object');
      record.body = body;

      const fault = this.faults.find((f) => f.remaining > 0 && (f.operation === undefined || f.operation === op));
      if (fault !== undefined) fault.remaining--;
      if (fault !== undefined && fault.code === 'network') {
        req.socket.destroy();
        return;
      }
      if (fault !== undefined && fault.code !== 'network-after') {
        throw new AthenaError(fault.code, `injected ${fault.code}`, fault.code === 'InternalServerException' ? 500 : 400);
      }
      validate(op, body);
      const out = await this.dispatch(op, body);
      if (fault !== undefined) {
        // The request took effect but its answer is lost: what makes idempotency tokens necessary.
        record.status = 0;
        req.socket.destroy();
        return;
      }
      answer(200, out);
    } catch (err) {
      const e = err instanceof AthenaError ? err : new AthenaError('InternalServerException', `stand-in bug: ${(err as Error).stack ?? String(err)}`, 500);
      answer(e.status, { __type: e.code, Message: e.message, ...(e.athenaErrorCode ? { AthenaErrorCode: e.athenaErrorCode } : {}) }, e.code);
    }
  }

  private async dispatch(op: AthenaOperation, b: JsonObject): Promise<JsonObject> {
    switch (op) {
      case 'StartQueryExecution':
        return this.start(b);
      case 'GetQueryExecution':
        return { QueryExecution: this.describe(this.poll(this.execution(b))) };
      case 'GetQueryResults':
        return this.results(b);
      case 'StopQueryExecution': {
        const e = this.execution(b);
        if (e.state === 'QUEUED' || e.state === 'RUNNING') {
          e.state = 'CANCELLED';
          e.reason = 'Query was cancelled by user';
          e.completed = Date.now();
        }
        return {};
      }
    }
  }

  private execution(b: JsonObject): StandInExecution {
    const id = String(b.QueryExecutionId);
    const e = this.executions.get(id);
    if (e === undefined) throw new AthenaError('InvalidRequestException', `QueryExecution ${id} was not found`, 400, 'INVALID_INPUT');
    return e;
  }

  private async start(b: JsonObject): Promise<JsonObject> {
    const token = b.ClientRequestToken;
    if (typeof token !== 'string') {
      throw new AthenaError('InvalidRequestException', 'ClientRequestToken is required when not using an AWS SDK or the AWS CLI (it makes StartQueryExecution idempotent)', 400, 'INVALID_INPUT');
    }
    const query = String(b.QueryString);
    const ctx = (b.QueryExecutionContext ?? {}) as JsonObject;
    const rc = (b.ResultConfiguration ?? {}) as JsonObject;
    const workGroup = typeof b.WorkGroup === 'string' ? b.WorkGroup : 'primary';
    const fingerprint = JSON.stringify([query, ctx.Database ?? null, ctx.Catalog ?? null, workGroup, rc.OutputLocation ?? null]);
    const existing = this.byToken.get(token);
    if (existing !== undefined) {
      if (this.executions.get(existing)!.fingerprint !== fingerprint) throw new AthenaError('InvalidRequestException', 'Idempotent parameters do not match', 400, 'INVALID_INPUT');
      return { QueryExecutionId: existing };
    }
    const wg = this.workGroups[workGroup];
    if (wg === undefined) throw new AthenaError('InvalidRequestException', `WorkGroup ${workGroup} is not found.`, 400, 'INVALID_INPUT');
    const outputLocation = typeof rc.OutputLocation === 'string' ? rc.OutputLocation : wg.outputLocation;
    if (outputLocation === undefined) {
      throw new AthenaError('InvalidRequestException', 'No output location provided. An output location is required either through the Workgroup result configuration setting or as an API input.', 400, 'INVALID_INPUT');
    }
    if (!/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(outputLocation)) {
      throw new AthenaError('InvalidRequestException', `outputLocation ${outputLocation} is not a valid S3 path.`, 400, 'INVALID_INPUT');
    }
    await this.checkSyntax(query);
    const e: StandInExecution = {
      id: randomUUID(),
      query,
      token,
      fingerprint,
      database: typeof ctx.Database === 'string' ? ctx.Database : undefined,
      catalog: typeof ctx.Catalog === 'string' ? ctx.Catalog : undefined,
      workGroup,
      outputLocation,
      statementType: statementTypeOf(query),
      state: 'QUEUED',
      answered: [],
      submitted: Date.now(),
      polls: 0,
    };
    this.executions.set(e.id, e);
    this.byToken.set(token, e.id);
    const schemaMissing = e.database !== undefined && this.databases !== undefined && !this.databases.has(e.database.toLowerCase());
    const run = schemaMissing
      ? Promise.reject(new Error(`SCHEMA_NOT_FOUND: Schema '${e.database}' does not exist`))
      : this.options.execute(query, { database: e.database, catalog: e.catalog });
    e.running = run.then(
      (result) => (e.outcome = { result }),
      (err: unknown) => (e.outcome = { error: (err as Error)?.message ?? String(err) }),
    );
    return { QueryExecutionId: e.id };
  }

  /** Parse errors are refused at submission, as Athena does ("line 1:8: …"); DuckDB's parser stands in for Athena's. */
  private async checkSyntax(sql: string): Promise<void> {
    this.parser ??= DuckDBInstance.create(':memory:').then(async (instance) => ({ instance, conn: await instance.connect() }));
    const { conn } = await this.parser;
    const reader = await conn.runAndReadAll(`SELECT json_serialize_sql(${`'${sql.replace(/'/g, "''")}'`})`);
    const parsed = JSON.parse(String(reader.getRows()[0]![0])) as { error: boolean; error_type?: string; error_message?: string; position?: string; statements?: unknown[] };
    if (parsed.error && parsed.error_type === 'parser') {
      const pos = Number(parsed.position ?? 0);
      const before = sql.slice(0, pos).split('\n');
      throw new AthenaError('InvalidRequestException', `line ${before.length}:${before[before.length - 1]!.length + 1}: ${parsed.error_message}`, 400, 'MALFORMED_QUERY');
    }
    if (!parsed.error && (parsed.statements?.length ?? 0) > 1) {
      throw new AthenaError('InvalidRequestException', 'Only one sql statement is allowed.', 400, 'MALFORMED_QUERY');
    }
  }

  /** Advances the state one step per poll (QUEUED, RUNNING, then the outcome once it is known). */
  private poll(e: StandInExecution): StandInExecution {
    e.polls++;
    if (e.state === 'QUEUED' && e.polls > this.pollsPerState) e.state = 'RUNNING';
    if (e.state === 'RUNNING' && e.polls > 2 * this.pollsPerState && e.outcome !== undefined) {
      e.completed = Date.now();
      if (e.outcome.error !== undefined) {
        e.state = 'FAILED';
        e.reason = e.outcome.error;
      } else {
        e.state = 'SUCCEEDED';
      }
    }
    e.answered.push(e.state);
    return e;
  }

  private describe(e: StandInExecution): JsonObject {
    const status: JsonObject = { State: e.state, SubmissionDateTime: e.submitted / 1000 };
    if (e.completed !== undefined) status.CompletionDateTime = e.completed / 1000;
    if (e.reason !== undefined) status.StateChangeReason = e.reason;
    if (e.state === 'FAILED') status.AthenaError = { ErrorCategory: 2, ErrorType: 1000, Retryable: false, ErrorMessage: e.reason ?? '' };
    const context: JsonObject = {};
    if (e.database !== undefined) context.Database = e.database;
    if (e.catalog !== undefined) context.Catalog = e.catalog;
    const elapsed = (e.completed ?? Date.now()) - e.submitted;
    return {
      QueryExecutionId: e.id,
      Query: e.query,
      StatementType: e.statementType,
      ResultConfiguration: { OutputLocation: `${e.outputLocation.replace(/\/?$/, '/')}${e.id}.csv` },
      QueryExecutionContext: context,
      Status: status,
      Statistics: { EngineExecutionTimeInMillis: elapsed, DataScannedInBytes: 0, TotalExecutionTimeInMillis: elapsed, QueryQueueTimeInMillis: 0 },
      WorkGroup: e.workGroup,
      EngineVersion: { SelectedEngineVersion: 'AUTO', EffectiveEngineVersion: 'Athena engine version 3' },
    };
  }

  private results(b: JsonObject): JsonObject {
    const e = this.execution(b);
    if (b.QueryResultType === 'DATA_MANIFEST') throw new AthenaError('InvalidRequestException', 'DATA_MANIFEST is only available for CTAS, UNLOAD and INSERT queries', 400, 'INVALID_INPUT');
    if (e.state === 'QUEUED' || e.state === 'RUNNING') throw new AthenaError('InvalidRequestException', `Query has not yet finished. Current state: ${e.state}`, 400, 'INVALID_INPUT');
    if (e.state !== 'SUCCEEDED') throw new AthenaError('InvalidRequestException', `Query did not finish successfully. Final query state: ${e.state}`, 400, 'INVALID_INPUT');
    const r = e.outcome!.result! as QueryResult & { updateCount?: number };
    const types = r.types.map(athenaColumnType);
    const header = e.statementType === 'DML' ? [{ Data: r.columns.map((c) => ({ VarCharValue: c })) }] : [];
    const total = header.length + r.rows.length;
    const offset = decodeToken(b.NextToken, e.id);
    const size = typeof b.MaxResults === 'number' ? b.MaxResults : 1000;
    const rows: JsonObject[] = [];
    for (let i = offset; i < Math.min(total, offset + size); i++) {
      if (i < header.length) rows.push(header[i]!);
      else {
        const data = r.rows[i - header.length]!.map((v, c): JsonObject => {
          const text = athenaText(v, types[c]!.type);
          return text === undefined ? {} : { VarCharValue: text };
        });
        rows.push({ Data: data });
      }
    }
    const out: JsonObject = {
      UpdateCount: r.updateCount ?? 0,
      ResultSet: {
        Rows: rows,
        ResultSetMetadata: {
          ColumnInfo: r.columns.map((name, c) => ({
            CatalogName: 'hive',
            SchemaName: '',
            TableName: '',
            Name: name,
            Label: name,
            Type: types[c]!.type,
            Precision: types[c]!.precision,
            Scale: types[c]!.scale,
            Nullable: 'UNKNOWN',
            CaseSensitive: types[c]!.type === 'varchar',
          })),
        },
      },
    };
    if (offset + size < total) out.NextToken = encodeToken(e.id, offset + size);
    return out;
  }
}

/** Starts a stand-in on 127.0.0.1 (a free port) and stops it in after() (the surrounding test, or the file). */
export async function startAthenaStandIn(options: AthenaStandInOptions): Promise<AthenaStandIn> {
  const standIn = new AthenaStandIn(options);
  after(() => standIn.close());
  await standIn.listen();
  return standIn;
}
