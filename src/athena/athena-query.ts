import { randomUUID } from 'node:crypto';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
  type ColumnInfo,
  type GetQueryResultsCommandOutput,
  type QueryExecution,
} from '@aws-sdk/client-athena';
import { describeSdkError, isRetriableSdkError } from '../aws/sdk-errors.ts';
import { badOption, ConfigError, QueryError } from '../errors.ts';
import { checkClientOptions } from '../aws/client-options.ts';
import type { QueryResult } from '../query/lake-query.ts';

/** StartQueryExecution: QueryString is 1..262,144 characters (Athena API reference). */
export const ATHENA_MAX_QUERY_LENGTH = 262_144;
/** GetQueryResults: MaxResults is 1..1,000 rows per page. */
export const ATHENA_MAX_PAGE_ROWS = 1000;
/** WorkGroupName pattern. */
const WORKGROUP_RULE = /^[a-zA-Z0-9._-]{1,128}$/;
/** Catalog name: 1..256 characters of Athena's single-line pattern. */
const CATALOG_RULE = /^[\u0020-\uD7FF\uE000-\uFFFD\uD800-\uDBFF\uDC00-\uDFFF\t]{1,256}$/;
/** ClientRequestToken (IdempotencyToken): 32..128 characters. */
const TOKEN_MIN = 32;
const TOKEN_MAX = 128;
/** Attempts per request made by a client this class creates (the SDK retries throttling, 5xx, network). */
const DEFAULT_CLIENT_MAX_ATTEMPTS = 5;
const DEFAULT_POLL = { initialDelayMs: 100, factor: 1.5, maxDelayMs: 2_000 };
/** Athena's own default DML timeout is 30 minutes. */
const DEFAULT_TIMEOUT_MS = 30 * 60_000;

/** Athena error codes (and the SDK's) that mean "try again later". */
const RETRIABLE_CODES = new Set(['TooManyRequestsException', 'InternalServerException', 'ThrottlingException', 'ServiceUnavailable', 'RequestTimeout', 'TimeoutError']);

export interface AthenaQueryOptions {
  /** Database (QueryExecutionContext.Database) unqualified table names resolve in; 1..255 characters. */
  database?: string;
  /** Data catalog (QueryExecutionContext.Catalog); default Athena's (AwsDataCatalog). */
  catalog?: string;
  /** Workgroup; default `primary`. */
  workGroup?: string;
  /** `s3://bucket/prefix/` for result files; default: the workgroup's result location. */
  outputLocation?: string;
  /** A configured client; when given, `region` and `endpoint` must not be. */
  client?: AthenaClient;
  /** AWS region; otherwise the SDK's usual resolution (AWS_REGION, profile). */
  region?: string;
  /** Endpoint URL (a test server); otherwise AWS_ENDPOINT_URL_ATHENA / AWS_ENDPOINT_URL, as the SDK reads them. */
  endpoint?: string;
  /** Polling of GetQueryExecution: first delay, growth factor, largest delay. Default 100 ms × 1.5 up to 2 s. */
  poll?: { initialDelayMs?: number; factor?: number; maxDelayMs?: number };
  /** Give up (and stop the query) after this long; default 30 minutes. */
  timeoutMs?: number;
  /** GetQueryResults page size, 1..1000; default 1000. */
  pageSize?: number;
}

/** A finished query: its rows (typed from Athena's column types) and what Athena reported. */
export interface AthenaResult extends QueryResult {
  queryExecutionId: string;
  /** DataScannedInBytes, when Athena reported it. */
  dataScannedBytes?: number;
  /** EngineExecutionTimeInMillis, when Athena reported it. */
  engineMs?: number;
  /** GetQueryResults' UpdateCount: the rows a CREATE TABLE AS SELECT, INSERT INTO or UNLOAD wrote (absent for other statements). */
  updateCount?: number;
}

export interface AthenaRunOptions {
  /** Aborting stops the query (StopQueryExecution) and rejects with a QueryError. */
  signal?: AbortSignal;
  /** ClientRequestToken (32..128 characters); default a fresh UUID, reused by every retry of the start. */
  clientRequestToken?: string;
}

/**
 * Runs SQL on Amazon Athena: StartQueryExecution (idempotent through its ClientRequestToken),
 * GetQueryExecution polled with exponential backoff until a final state, then every page of
 * GetQueryResults, with values converted by the column types Athena reports.
 *
 * - FAILED and CANCELLED queries reject with a QueryError carrying Athena's StateChangeReason (and
 *   AthenaError.ErrorMessage when it differs) verbatim; so do requests Athena refuses outright
 *   (InvalidRequestException: syntax errors, unknown workgroup, missing output location).
 * - An abort or the overall timeout stops the query with StopQueryExecution before rejecting.
 * - Throttling, 5xx and network failures are retried by the SDK (5 attempts); after that the
 *   QueryError is `retriable`.
 */
export class AthenaQuery {
  readonly database: string | undefined;
  readonly catalog: string | undefined;
  readonly workGroup: string;
  readonly outputLocation: string | undefined;
  private readonly client: AthenaClient;
  private readonly poll: { initialDelayMs: number; factor: number; maxDelayMs: number };
  private readonly timeoutMs: number;
  private readonly pageSize: number;

  constructor(options: AthenaQueryOptions = {}) {
    if (options === null || typeof options !== 'object') badOption('Athena options', options, 'an object');
    if (options.database !== undefined && (typeof options.database !== 'string' || options.database.length < 1 || options.database.length > 255)) {
      badOption('Athena database', options.database, 'a database name of 1 to 255 characters');
    }
    this.database = options.database;
    if (options.catalog !== undefined && (typeof options.catalog !== 'string' || !CATALOG_RULE.test(options.catalog))) {
      badOption('Athena catalog', options.catalog, 'a data catalog name of 1 to 256 characters without control characters');
    }
    this.catalog = options.catalog;
    const workGroup = options.workGroup ?? 'primary';
    if (typeof workGroup !== 'string' || !WORKGROUP_RULE.test(workGroup)) {
      badOption('Athena workgroup', workGroup, '1 to 128 letters, digits, ".", "_" or "-"');
    }
    this.workGroup = workGroup;
    if (options.outputLocation !== undefined && (typeof options.outputLocation !== 'string' || !/^s3:\/\/[^/]+/.test(options.outputLocation))) {
      badOption('Athena output location', options.outputLocation, 'an S3 URI such as s3://bucket/athena-results/');
    }
    this.outputLocation = options.outputLocation;

    const p = options.poll ?? {};
    if (p === null || typeof p !== 'object') badOption('Athena poll', p, 'an object { initialDelayMs, factor, maxDelayMs }');
    const initialDelayMs = p.initialDelayMs ?? DEFAULT_POLL.initialDelayMs;
    if (!Number.isFinite(initialDelayMs) || initialDelayMs < 1 || initialDelayMs > 60_000) badOption('Athena poll.initialDelayMs', initialDelayMs, 'milliseconds from 1 to 60000');
    const factor = p.factor ?? DEFAULT_POLL.factor;
    if (!Number.isFinite(factor) || factor < 1 || factor > 10) badOption('Athena poll.factor', factor, 'a number from 1 to 10');
    const maxDelayMs = p.maxDelayMs ?? Math.max(DEFAULT_POLL.maxDelayMs, initialDelayMs);
    if (!Number.isFinite(maxDelayMs) || maxDelayMs < initialDelayMs || maxDelayMs > 300_000) {
      badOption('Athena poll.maxDelayMs', maxDelayMs, `milliseconds from poll.initialDelayMs (${initialDelayMs}) to 300000`);
    }
    this.poll = { initialDelayMs, factor, maxDelayMs };
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 1 || timeoutMs > 7 * 86_400_000) badOption('Athena timeoutMs', timeoutMs, 'milliseconds from 1 to 604800000 (7 days)');
    this.timeoutMs = timeoutMs;
    const pageSize = options.pageSize ?? ATHENA_MAX_PAGE_ROWS;
    if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > ATHENA_MAX_PAGE_ROWS) badOption('Athena pageSize', pageSize, `a whole number from 1 to ${ATHENA_MAX_PAGE_ROWS} (GetQueryResults MaxResults)`);
    this.pageSize = pageSize;

    checkClientOptions('Athena', 'Athena', options);
    if (options.client !== undefined) {
      this.client = options.client;
    } else {
      this.client = new AthenaClient({ region: options.region, endpoint: options.endpoint, maxAttempts: DEFAULT_CLIENT_MAX_ATTEMPTS });
    }
  }

  /** Runs `sql` to completion and returns every row. */
  async run(sql: string, options: AthenaRunOptions = {}): Promise<AthenaResult> {
    const id = await this.start(sql, options);
    const execution = await this.wait(id, options.signal);
    const result = await this.results(id, execution.StatementType, options.signal);
    const stats = execution.Statistics;
    return {
      ...result,
      queryExecutionId: id,
      ...(stats?.DataScannedInBytes !== undefined ? { dataScannedBytes: stats.DataScannedInBytes } : {}),
      ...(stats?.EngineExecutionTimeInMillis !== undefined ? { engineMs: stats.EngineExecutionTimeInMillis } : {}),
    };
  }

  /** StartQueryExecution; returns the QueryExecutionId. */
  async start(sql: string, options: AthenaRunOptions = {}): Promise<string> {
    if (typeof sql !== 'string' || sql.trim().length === 0) badOption('Athena query', sql, 'a non-empty SQL statement');
    if (sql.length > ATHENA_MAX_QUERY_LENGTH) badOption('Athena query', `${sql.slice(0, 40)}… (${sql.length} characters)`, `at most ${ATHENA_MAX_QUERY_LENGTH} characters (StartQueryExecution QueryString)`);
    const token = options.clientRequestToken ?? randomUUID();
    if (typeof token !== 'string' || token.length < TOKEN_MIN || token.length > TOKEN_MAX) {
      badOption('Athena clientRequestToken', token, `${TOKEN_MIN} to ${TOKEN_MAX} characters`);
    }
    options.signal?.throwIfAborted();
    const context = this.database !== undefined || this.catalog !== undefined ? { Database: this.database, Catalog: this.catalog } : undefined;
    try {
      const out = await this.client.send(
        new StartQueryExecutionCommand({
          QueryString: sql,
          ClientRequestToken: token,
          QueryExecutionContext: context,
          WorkGroup: this.workGroup,
          ResultConfiguration: this.outputLocation !== undefined ? { OutputLocation: this.outputLocation } : undefined,
        }),
        { abortSignal: options.signal },
      );
      if (!out.QueryExecutionId) throw new QueryError('Athena StartQueryExecution answered without a QueryExecutionId');
      return out.QueryExecutionId;
    } catch (err) {
      throw this.failure('start the query', err, options.signal);
    }
  }

  /**
   * Polls GetQueryExecution (backoff from poll.initialDelayMs, ×factor, capped at maxDelayMs) until
   * SUCCEEDED, which it returns; FAILED or CANCELLED reject with Athena's reason. On abort or timeout
   * the query is stopped first.
   */
  async wait(queryExecutionId: string, signal?: AbortSignal): Promise<QueryExecution> {
    const deadline = Date.now() + this.timeoutMs;
    let delay = this.poll.initialDelayMs;
    for (;;) {
      let execution: QueryExecution | undefined;
      try {
        execution = (await this.client.send(new GetQueryExecutionCommand({ QueryExecutionId: queryExecutionId }), { abortSignal: signal })).QueryExecution;
      } catch (err) {
        if (signal?.aborted) await this.stopQuietly(queryExecutionId);
        throw this.failure(`read the state of query ${queryExecutionId}`, err, signal);
      }
      const status = execution?.Status;
      switch (status?.State) {
        case 'SUCCEEDED':
          return execution!;
        case 'FAILED':
        case 'CANCELLED': {
          throw new QueryError(`Athena query ${queryExecutionId} ${status.State}: ${failureReason(execution!)}`, {
            retriable: status.AthenaError?.Retryable === true,
          });
        }
        default:
          // QUEUED or RUNNING (Athena may move a query from RUNNING back to QUEUED after a transient error).
          break;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        await this.stopQuietly(queryExecutionId);
        throw new QueryError(`Athena query ${queryExecutionId} did not finish within ${this.timeoutMs} ms (last state ${status?.State ?? 'unknown'}); it was stopped`, { retriable: true });
      }
      try {
        await sleep(Math.min(delay, left), signal);
      } catch {
        await this.stopQuietly(queryExecutionId);
        throw aborted(queryExecutionId, signal);
      }
      delay = Math.min(delay * this.poll.factor, this.poll.maxDelayMs);
    }
  }

  /**
   * Every page of GetQueryResults as one result. For DML statements (SELECT) the first row of the
   * first page holds the column labels, not data, and is dropped; DDL and utility results have no such row.
   */
  async results(queryExecutionId: string, statementType?: string, signal?: AbortSignal): Promise<QueryResult & { updateCount?: number }> {
    let columns: string[] | undefined;
    let updateCount: number | undefined;
    let infos: ColumnInfo[] = [];
    const rows: unknown[][] = [];
    let token: string | undefined;
    let first = true;
    do {
      let page: GetQueryResultsCommandOutput;
      try {
        page = await this.client.send(new GetQueryResultsCommand({ QueryExecutionId: queryExecutionId, NextToken: token, MaxResults: this.pageSize }), { abortSignal: signal });
      } catch (err) {
        throw this.failure(`read the results of query ${queryExecutionId}`, err, signal);
      }
      if (columns === undefined) {
        updateCount = page.UpdateCount;
        infos = page.ResultSet?.ResultSetMetadata?.ColumnInfo ?? [];
        columns = infos.map((c) => c.Name ?? c.Label ?? '');
      }
      let pageRows = page.ResultSet?.Rows ?? [];
      if (first && statementType !== 'DDL' && statementType !== 'UTILITY' && pageRows.length > 0 && isHeaderRow(pageRows[0]!.Data ?? [], infos)) {
        pageRows = pageRows.slice(1);
      }
      first = false;
      for (const r of pageRows) {
        const data = r.Data ?? [];
        rows.push(infos.map((c, i) => athenaValue(c.Type ?? 'varchar', data[i]?.VarCharValue)));
      }
      const next = page.NextToken || undefined;
      if (next !== undefined && next === token) throw new QueryError(`Athena GetQueryResults for ${queryExecutionId} returned the same NextToken twice`);
      token = next;
    } while (token !== undefined);
    return { columns: columns ?? [], types: infos.map(athenaTypeName), rows, ...(updateCount !== undefined ? { updateCount } : {}) };
  }

  /** StopQueryExecution (idempotent; stopping a finished query changes nothing). */
  async stop(queryExecutionId: string): Promise<void> {
    try {
      await this.client.send(new StopQueryExecutionCommand({ QueryExecutionId: queryExecutionId }));
    } catch (err) {
      throw this.failure(`stop query ${queryExecutionId}`, err);
    }
  }

  /** Releases the client's sockets (only a client this instance created). */
  destroy(): void {
    this.client.destroy();
  }

  private async stopQuietly(id: string): Promise<void> {
    try {
      await this.stop(id);
    } catch {
      // The query is being abandoned anyway; Athena's own timeout ends it if this failed.
    }
  }

  private failure(what: string, err: unknown, signal?: AbortSignal): QueryError | ConfigError {
    if (err instanceof QueryError || err instanceof ConfigError) return err;
    if (signal?.aborted) return aborted(undefined, signal);
    const { name, status } = describeSdkError(err);
    const message = (err as Error)?.message ?? String(err);
    if (/Region is missing/i.test(message)) return new ConfigError(`Athena: no AWS region; set AWS_REGION or pass --region`, { cause: err });
    // InvalidRequestException carries Athena's own wording (a syntax error, an unknown workgroup): keep it verbatim.
    const code = (err as { AthenaErrorCode?: string }).AthenaErrorCode;
    const detail = name === 'InvalidRequestException' ? message : `${name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${message}`;
    return new QueryError(`Athena could not ${what}: ${detail}${code ? ` [${code}]` : ''}`, { retriable: isRetriableSdkError(err, RETRIABLE_CODES), cause: err });
  }
}

/** StateChangeReason, and AthenaError.ErrorMessage when it adds something, verbatim. */
function failureReason(e: QueryExecution): string {
  const reason = e.Status?.StateChangeReason;
  const message = e.Status?.AthenaError?.ErrorMessage;
  if (reason && message && !reason.includes(message)) return `${reason} (${message})`;
  return reason || message || 'no reason given';
}

function aborted(id: string | undefined, signal?: AbortSignal): QueryError {
  const why = signal?.reason instanceof Error ? signal.reason.message : signal?.reason !== undefined ? String(signal.reason) : 'aborted';
  return new QueryError(`Athena query${id ? ` ${id}` : ''} was stopped: ${why}`, { cause: signal?.reason });
}

function isHeaderRow(data: Array<{ VarCharValue?: string }>, infos: ColumnInfo[]): boolean {
  if (data.length !== infos.length) return false;
  return infos.every((c, i) => data[i]?.VarCharValue === (c.Label ?? c.Name) || data[i]?.VarCharValue === c.Name);
}

/** The column's type as shown: Athena's name, with precision and scale for decimals. */
export function athenaTypeName(c: ColumnInfo): string {
  const t = (c.Type ?? 'varchar').toLowerCase();
  if (t === 'decimal' && c.Precision !== undefined) return `decimal(${c.Precision},${c.Scale ?? 0})`;
  return t;
}

/**
 * A VarCharValue as a JSON-safe value by its Athena type, the way `tributary query` renders DuckDB's:
 * a missing VarCharValue is NULL; integers are numbers (bigint beyond 2^53 stays a string); real and
 * double are numbers (NaN and ±Infinity as strings); boolean is a boolean; decimal stays a string
 * (exact); timestamp is `YYYY-MM-DD HH:MM:SS[.fff]` without trailing zeros; date and everything else
 * (json, varchar, arrays, maps, rows, varbinary, time, intervals) keep Athena's text verbatim.
 */
export function athenaValue(type: string, text: string | undefined): unknown {
  if (text === undefined) return null;
  const t = type.toLowerCase().replace(/\(.*$/, '').trim();
  switch (t) {
    case 'tinyint':
    case 'smallint':
    case 'integer':
    case 'int':
      return Number(text);
    case 'bigint': {
      const n = Number(text);
      return Number.isSafeInteger(n) ? n : text;
    }
    case 'double':
    case 'real':
    case 'float': {
      const n = Number(text);
      return Number.isFinite(n) ? n : text === 'NaN' ? 'NaN' : n > 0 ? 'Infinity' : '-Infinity';
    }
    case 'boolean':
      return text === 'true' ? true : text === 'false' ? false : text;
    case 'timestamp':
      return text.replace(/^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})\.(\d*?)0*$/, (_m, head: string, frac: string) => (frac ? `${head}.${frac}` : head));
    default:
      return text;
  }
}

/** Sleeps `ms`, rejecting early when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
