import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGunzip } from 'node:zlib';
import { badOption, ConfigError } from '../errors.ts';
import { MAX_BATCH_BYTES, MAX_EVENT_BYTES } from '../events/decode.ts';
import { EVENT_TYPES } from '../events/schema.ts';
import type { EventLog } from '../source/local-log.ts';

const KiB = 1024;

export interface CollectorOptions {
  /** Where accepted events go; a request is answered 200 only once its append has resolved (durable). */
  log: EventLog;
  /** Accepted write keys: the HTTP Basic user name (empty password), or the body's `writeKey`. */
  writeKeys: string[];
  /** Largest event, as stored (with receivedAt, messageId and the batch-level fields). Default 32 KiB, at most 32 KiB (the pipeline dead-letters larger ones). */
  maxEventBytes?: number;
  /** Largest request body once decompressed. Default 500 KiB (Segment's batch limit). */
  maxBatchBytes?: number;
  /** Bytes read or accepted but not yet durable; beyond it requests get 429 with Retry-After. Default 64 MiB. */
  maxPendingBytes?: number;
  /** Reading stops and 413 is answered beyond this many body bytes (compressed or not). Default maxBatchBytes + 16 KiB. */
  maxBodyBytes?: number;
  /** The clock for receivedAt (ms since the epoch); for tests. */
  now?: () => number;
}

export interface CollectorStats {
  /** Requests received. */
  requests: number;
  /** Requests answered 200 on a /v1 endpoint (their events durable). */
  acceptedRequests: number;
  /** Events appended to the log by those requests. */
  acceptedEvents: number;
  /** Requests answered with an error, by HTTP status. */
  refused: Record<number, number>;
  /** Bytes held for requests not yet answered (counted against maxPendingBytes). */
  pendingBytes: number;
}

export interface Collector {
  readonly server: http.Server;
  /** Starts listening (port 0: any free port); resolves with the port. */
  listen(port: number, host?: string): Promise<{ port: number }>;
  /** Stops taking connections, waits for requests in flight (their appends included). Does not close the log. */
  close(): Promise<void>;
  stats(): CollectorStats;
}

const SINGLE_TYPES = new Set<string>(EVENT_TYPES);
/** Segment's batch endpoint; `/v1/import` is the path Segment's own older libraries (analytics-ruby, -android, -ios) post batches to. */
const BATCH_PATHS = new Set(['/v1/batch', '/v1/import']);
const ENVELOPE_FIELDS = ['context', 'integrations', 'sentAt'] as const;
const RETRY_AFTER_S = '1';

/** An answer other than 200, with the message for the client. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The client went away before its body was read: nothing to answer. */
class ClientGone extends Error {}

interface Resolved {
  log: EventLog;
  keyDigests: Buffer[];
  maxEventBytes: number;
  maxBatchBytes: number;
  maxPendingBytes: number;
  maxBodyBytes: number;
  now: () => number;
}

function positiveInt(name: string, value: unknown, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) badOption(`collector ${name}`, value, 'a whole number of bytes, at least 1');
  return value;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

function resolveOptions(o: CollectorOptions): Resolved {
  if (o === null || typeof o !== 'object') badOption('collector options', o, 'an object with log and writeKeys');
  const log = o.log as unknown;
  if (log === null || typeof log !== 'object' || typeof (log as EventLog).append !== 'function') {
    throw new ConfigError('collector log: expected an EventLog (an object with append(records)), such as a LocalLog');
  }
  if (!Array.isArray(o.writeKeys) || o.writeKeys.length === 0) {
    throw new ConfigError(`collector writeKeys: ${Array.isArray(o.writeKeys) ? 'an empty list' : JSON.stringify(o.writeKeys) ?? 'undefined'} is not valid; expected a non-empty list of write keys`);
  }
  o.writeKeys.forEach((k, i) => {
    // The key itself is not echoed: it is a secret.
    if (typeof k !== 'string' || k.length === 0 || k.includes(':') || /[\u0000-\u0020\u007f]/.test(k)) {
      throw new ConfigError(`collector writeKeys[${i}] is not valid (${typeof k !== 'string' ? `a ${k === null ? 'null' : typeof k}` : k.length === 0 ? 'an empty string' : "contains ':', a space or a control character"}); expected a non-empty string without ':', spaces or control characters (it is the HTTP Basic user name)`);
    }
  });
  const maxEventBytes = positiveInt('maxEventBytes', o.maxEventBytes, MAX_EVENT_BYTES);
  if (maxEventBytes > MAX_EVENT_BYTES) badOption('collector maxEventBytes', maxEventBytes, `at most ${MAX_EVENT_BYTES} (the pipeline dead-letters larger events)`);
  const maxBatchBytes = positiveInt('maxBatchBytes', o.maxBatchBytes, MAX_BATCH_BYTES);
  if (maxBatchBytes < maxEventBytes) badOption('collector maxBatchBytes', maxBatchBytes, `at least maxEventBytes (${maxEventBytes})`);
  const maxBodyBytes = positiveInt('maxBodyBytes', o.maxBodyBytes, maxBatchBytes + 16 * KiB);
  if (maxBodyBytes < maxBatchBytes) badOption('collector maxBodyBytes', maxBodyBytes, `at least maxBatchBytes (${maxBatchBytes})`);
  const maxPendingBytes = positiveInt('maxPendingBytes', o.maxPendingBytes, 64 * KiB * KiB);
  if (maxPendingBytes < maxBodyBytes) badOption('collector maxPendingBytes', maxPendingBytes, `at least maxBodyBytes (${maxBodyBytes}), so that one request alone always fits`);
  if (o.now !== undefined && typeof o.now !== 'function') badOption('collector now', o.now, 'a function returning ms since the epoch');
  return { log: log as EventLog, keyDigests: o.writeKeys.map(digest), maxEventBytes, maxBatchBytes, maxPendingBytes, maxBodyBytes, now: o.now ?? Date.now };
}

/**
 * A Segment-compatible HTTP collector (the HTTP Tracking API: `/v1/batch`, `/v1/import`, `/v1/track`,
 * `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias`) writing events to an EventLog,
 * one record per event. Each event gets `receivedAt` (arrival, always overwritten) and a `messageId`
 * when it has none; a batch's `context`, `integrations` and `sentAt` are copied onto members that
 * lack them. A request is answered 200 only after the log append resolved, so a 200 is durable.
 * Events that are JSON objects but invalid by the Segment spec are stored: the pipeline dead-letters them.
 */
export function createCollector(options: CollectorOptions): Collector {
  const o = resolveOptions(options);
  let pending = 0;
  let closing = false;
  const inflight = new Set<Promise<void>>();
  const st = { requests: 0, acceptedRequests: 0, acceptedEvents: 0, refused: {} as Record<number, number> };

  const server = http.createServer((req, res) => {
    st.requests++;
    const held = { bytes: 0 };
    const p = handle(req, res, held)
      .catch((err: unknown) => {
        if (err instanceof ClientGone) return;
        if (err instanceof HttpError) send(res, err.status, { success: false, error: err.message }, err.headers);
        else send(res, 500, { success: false, error: `internal error: ${(err as Error)?.message ?? String(err)}` });
      })
      .finally(() => {
        pending -= held.bytes;
        held.bytes = 0;
        inflight.delete(p);
      });
    inflight.add(p);
  });

  function send(res: http.ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    if (status !== 200) st.refused[status] = (st.refused[status] ?? 0) + 1;
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(text)),
      ...(closing ? { Connection: 'close' } : {}),
      ...headers,
    });
    res.end(text);
  }

  /** Sets this request's share of the pending bytes to `bytes`, unless that would pass maxPendingBytes. */
  function hold(held: { bytes: number }, bytes: number): boolean {
    if (bytes > held.bytes && pending - held.bytes + bytes > o.maxPendingBytes) return false;
    pending += bytes - held.bytes;
    held.bytes = bytes;
    return true;
  }

  const tooBusy = () =>
    new HttpError(429, `the collector is holding ${pending} bytes not yet durable (maxPendingBytes ${o.maxPendingBytes}); retry after ${RETRY_AFTER_S} s`, { 'Retry-After': RETRY_AFTER_S });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, held: { bytes: number }): Promise<void> {
    const arrivedMs = o.now();
    const pathname = routePath(req.url ?? '/');
    const method = req.method ?? 'GET';
    if (pathname === '/health') {
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} is not allowed on /health; use GET`, { Allow: 'GET, HEAD' });
      send(res, 200, { ok: true });
      return;
    }
    const isBatch = BATCH_PATHS.has(pathname);
    const single = pathname.startsWith('/v1/') ? pathname.slice(4) : '';
    if (!isBatch && !SINGLE_TYPES.has(single)) {
      throw new HttpError(404, `no endpoint ${pathname}; the collector serves POST /v1/batch, /v1/import, ${EVENT_TYPES.map((t) => `/v1/${t}`).join(', ')} and GET /health`);
    }
    if (method !== 'POST') throw new HttpError(405, `${method} is not allowed on ${pathname}; use POST`, { Allow: 'POST' });
    if (closing) throw new HttpError(503, 'the collector is shutting down; retry later', { 'Retry-After': RETRY_AFTER_S });

    const headerKeyOk = basicKeyOk(req.headers.authorization);
    const enc = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (enc !== 'identity' && enc !== 'gzip' && enc !== 'x-gzip') {
      throw new HttpError(415, `Content-Encoding ${JSON.stringify(enc)} is not supported; send the body as is or gzip-compressed`);
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > o.maxBodyBytes) {
      throw new HttpError(413, `the request body is ${declared} bytes, larger than the ${o.maxBodyBytes}-byte limit (maxBodyBytes)`);
    }
    if (pending >= o.maxPendingBytes) throw tooBusy();

    const bytes = await readBody(req, enc !== 'identity', o.maxBodyBytes, (n) => {
      if (!hold(held, held.bytes + n)) throw tooBusy();
    });

    // Parse first (a body writeKey needs it), but never tell an unauthenticated client more than 401.
    let body: unknown;
    let parseError: string | null = null;
    try {
      body = bytes.length === 0 ? undefined : JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
      if (bytes.length === 0) parseError = 'the request body is empty; expected a JSON object';
    } catch (err) {
      parseError = err instanceof TypeError ? 'the request body is not valid UTF-8' : `malformed JSON: ${(err as Error).message}`;
    }
    const isObject = body !== null && typeof body === 'object' && !Array.isArray(body);
    if (!headerKeyOk) {
      const key = isObject ? (body as Record<string, unknown>).writeKey : undefined;
      if (typeof key !== 'string' || !keyOk(key)) {
        throw new HttpError(
          401,
          req.headers.authorization !== undefined || key !== undefined
            ? 'unknown write key'
            : 'missing write key: send it as the HTTP Basic user name with an empty password, or as "writeKey" in the JSON body',
          { 'WWW-Authenticate': 'Basic realm="tributary collector"' },
        );
      }
    }
    if (parseError !== null) throw new HttpError(400, parseError);
    if (!isObject) throw new HttpError(400, `the request body is ${Array.isArray(body) ? 'an array' : body === null ? 'null' : `a ${typeof body}`}; expected a JSON object`);
    if (bytes.length > o.maxBatchBytes) {
      throw new HttpError(400, `the request body is ${bytes.length} bytes, larger than the ${o.maxBatchBytes}-byte batch limit`);
    }
    const records = toRecords(body as Record<string, unknown>, isBatch ? null : single, new Date(arrivedMs).toISOString());

    // What is held from now on: the records, until they are durable.
    if (!hold(held, records.bytes)) throw tooBusy();
    if (records.texts.length > 0) {
      try {
        await o.log.append(records.texts);
      } catch (err) {
        throw new HttpError(503, `the event log failed, so nothing from this request is acknowledged; retry later (${(err as Error)?.message ?? String(err)})`, { 'Retry-After': RETRY_AFTER_S });
      }
    }
    st.acceptedRequests++;
    st.acceptedEvents += records.texts.length;
    send(res, 200, { success: true });
  }

  function keyOk(key: string): boolean {
    const d = digest(key);
    let ok = false;
    for (const k of o.keyDigests) ok = timingSafeEqual(d, k) || ok;
    return ok;
  }

  function basicKeyOk(header: string | undefined): boolean {
    if (header === undefined) return false;
    const m = /^\s*Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
    if (m === null) return false;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return keyOk(colon < 0 ? decoded : decoded.slice(0, colon));
  }

  /** The events of a request as log records; `single` is the call type of a single-call endpoint, null for a batch endpoint. */
  function toRecords(body: Record<string, unknown>, single: string | null, receivedAt: string): { texts: string[]; bytes: number } {
    let members: unknown[];
    let envelope: Record<string, unknown> | null = null;
    if (single !== null) {
      if (body.type === undefined || body.type === null) body.type = single;
      else if (body.type !== single) throw new HttpError(400, `the body's type ${JSON.stringify(body.type)} contradicts the endpoint /v1/${single}; omit it or send the event to /v1/batch`);
      members = [body];
    } else if (body.type === undefined && Array.isArray(body.batch)) {
      members = body.batch;
      envelope = body;
    } else if (body.type === undefined && body.batch !== undefined) {
      throw new HttpError(400, `"batch" must be an array of events, got ${body.batch === null ? 'null' : typeof body.batch}`);
    } else if (body.type === undefined) {
      throw new HttpError(400, 'the body has no "batch" array (nor a "type", for a single event such as the Webhooks destination sends)');
    } else {
      members = [body]; // one event posted to the batch endpoint, as Segment's Webhooks destination does
    }
    const texts: string[] = [];
    let total = 0;
    for (let i = 0; i < members.length; i++) {
      const m = members[i];
      let text: string;
      if (m !== null && typeof m === 'object' && !Array.isArray(m)) {
        const ev = m as Record<string, unknown>;
        if (envelope !== null) {
          for (const k of ENVELOPE_FIELDS) if (ev[k] === undefined && envelope[k] !== undefined) ev[k] = envelope[k];
        }
        delete ev.writeKey; // a credential, not event data
        ev.receivedAt = receivedAt;
        if (ev.messageId === undefined || ev.messageId === null || ev.messageId === '') ev.messageId = randomUUID();
        text = JSON.stringify(ev);
      } else {
        text = JSON.stringify(m); // not an event: stored as is, the pipeline dead-letters it
      }
      const size = Buffer.byteLength(text, 'utf8');
      if (size > o.maxEventBytes) {
        const which = envelope === null ? 'the event' : `event ${i} of the batch`;
        throw new HttpError(400, `${which} is ${size} bytes as stored (with receivedAt, messageId${envelope === null ? '' : ' and the batch context'}), larger than the ${o.maxEventBytes}-byte event limit; nothing from this request was stored`);
      }
      total += size;
      if (total > o.maxPendingBytes) {
        throw new HttpError(400, `the batch expands to more than ${o.maxPendingBytes} bytes of events (maxPendingBytes) once its context is copied onto each member; send smaller batches`);
      }
      texts.push(text);
    }
    return { texts, bytes: total };
  }

  return {
    server,
    listen(port: number, host = '127.0.0.1') {
      if (!Number.isSafeInteger(port) || port < 0 || port > 65535) badOption('collector port', port, 'a whole number from 0 to 65535 (0: any free port)');
      return new Promise((resolve, reject) => {
        const onError = (err: Error) => reject(new ConfigError(`the collector cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          resolve({ port: (server.address() as AddressInfo).port });
        });
      });
    },
    async close() {
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), 5000);
      await stopped;
      clearTimeout(timer);
    },
    stats() {
      return { ...st, refused: { ...st.refused }, pendingBytes: pending };
    },
  };
}

function routePath(url: string): string {
  const q = url.indexOf('?');
  let p = q < 0 ? url : url.slice(0, q);
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

/**
 * Reads the request body (gunzipping it when `gzip`), at most `maxBytes` bytes on the wire and once
 * decompressed; `take(n)` is called for each decoded chunk and may throw to refuse it. On refusal the
 * rest of the body is discarded unread, and the error is thrown.
 */
function readBody(req: http.IncomingMessage, gzip: boolean, maxBytes: number, take: (n: number) => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let wire = 0;
    let size = 0;
    let done = false;
    const gunzip = gzip ? createGunzip() : null;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      req.off('data', onWire);
      req.off('end', onWireEnd);
      if (err !== null) {
        gunzip?.destroy();
        req.resume(); // discard the rest; Node answers and reuses or closes the connection
        reject(err);
      } else {
        resolve(Buffer.concat(chunks, size));
      }
    };
    const tooLarge = (where: string) => new HttpError(413, `the request body is over the ${maxBytes}-byte limit (maxBodyBytes)${where}`);
    const onDecoded = (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > maxBytes) return finish(tooLarge(gzip ? ' once decompressed' : ''));
      try {
        take(c.length);
      } catch (err) {
        return finish(err as Error);
      }
      chunks.push(c);
    };
    const onWire = (c: Buffer) => {
      wire += c.length;
      if (wire > maxBytes) return finish(tooLarge(gzip ? ' while still compressed' : ''));
      if (gunzip !== null) gunzip.write(c);
      else onDecoded(c);
    };
    const onWireEnd = () => {
      if (gunzip !== null) gunzip.end();
      else finish(null);
    };
    if (gunzip !== null) {
      gunzip.on('data', onDecoded);
      gunzip.on('end', () => finish(null));
      gunzip.on('error', (err) => finish(new HttpError(400, `the gzip body cannot be decompressed: ${err.message}`)));
    }
    req.on('data', onWire);
    req.on('end', onWireEnd);
    req.on('error', () => finish(new ClientGone()));
    req.on('close', () => {
      if (!req.complete) finish(new ClientGone());
    });
  });
}
