import type * as http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Catalog } from '../catalog/catalog.ts';
import { QueryError, TributaryError } from '../errors.ts';
import type { Storage } from '../storage/storage.ts';
import type { SnapshotSource } from '../writer/spool.ts';
import { queryLive, type LakeQueryOptions, type QueryResult } from './lake-query.ts';

/** Largest SQL body accepted. */
const MAX_SQL_BYTES = 256 * 1024;

function authorized(req: http.IncomingMessage, keys: string[]): boolean {
  const h = req.headers.authorization;
  if (h === undefined || !/^Basic /i.test(h)) return false;
  const user = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8').split(':')[0] ?? '';
  return keys.some((k) => k.length === user.length && timingSafeEqual(Buffer.from(k), Buffer.from(user)));
}

/**
 * `POST /v1/query` with `{"sql": "..."}` (HTTP Basic auth with a write key): runs the SQL over
 * committed files ∪ live rows from one snapshot and answers `{"columns","types","rows"}` — the
 * small protocol behind `tributary query --live URL`. Errors: `{"error"}` with 400 (bad SQL or
 * request), 401, 405, 413, 500.
 */
export function queryHandler(storage: Storage, catalog: Catalog, writer: SnapshotSource, keys: string[], options: LakeQueryOptions = {}) {
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST') return send(405, { error: 'use POST with {"sql": "..."}' });
    if (!authorized(req, keys)) return send(401, { error: 'HTTP Basic auth with a write key as the user name is required' });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_SQL_BYTES) return send(413, { error: `request larger than ${MAX_SQL_BYTES} bytes` });
      chunks.push(c as Buffer);
    }
    let sql: unknown;
    try {
      sql = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { sql?: unknown }).sql;
    } catch {
      return send(400, { error: 'the body must be JSON: {"sql": "..."}' });
    }
    if (typeof sql !== 'string' || sql.trim() === '') return send(400, { error: '"sql" must be a non-empty string' });
    try {
      const result: QueryResult = await queryLive(storage, catalog, writer, sql, options);
      send(200, result);
    } catch (err) {
      send(err instanceof QueryError ? 400 : 500, { error: (err as Error).message, retriable: err instanceof TributaryError ? err.retriable : false });
    }
  };
}

/** Runs SQL on a live endpoint (`tributary dev`); the client side of queryHandler. */
export async function fetchLiveQuery(baseUrl: string, writeKey: string, sql: string): Promise<QueryResult> {
  let res: Response;
  try {
    res = await fetch(new URL('/v1/query', baseUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}` },
      body: JSON.stringify({ sql }),
    });
  } catch (err) {
    throw new QueryError(`cannot reach ${baseUrl}: ${(err as Error).message}${(err as { cause?: Error }).cause ? ` (${(err as { cause: Error }).cause.message})` : ''}`, { retriable: true, cause: err });
  }
  const body = (await res.json().catch(() => ({ error: `HTTP ${res.status} without a JSON body` }))) as QueryResult & { error?: string };
  if (!res.ok) throw new QueryError(`${baseUrl}: ${body.error ?? `HTTP ${res.status}`}`, { retriable: res.status >= 500 });
  return body;
}
