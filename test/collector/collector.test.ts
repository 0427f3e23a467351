import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Analytics } from '@segment/analytics-node';
import { createCollector, type Collector, type CollectorOptions } from '../../src/collector/collector.ts';
import { ConfigError, StorageError } from '../../src/errors.ts';
import { decodeRecord, isInvalid, MAX_BATCH_BYTES, MAX_EVENT_BYTES } from '../../src/events/decode.ts';
import { EVENT_TYPES } from '../../src/events/schema.ts';
import { LocalLog, LocalLogSource, type EventLog } from '../../src/source/local-log.ts';
import type { RecordBatch } from '../../src/source/source.ts';
import { ROOT, tempDir } from '../support/tmp.ts';

type Obj = Record<string, unknown>;
const KEY = 'wk_test_Xq7';
const basic = (key: string, password = '') => 'Basic ' + Buffer.from(`${key}:${password}`).toString('base64');
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Every record of the log in `dir`, parsed, in log order. */
async function readLog(dir: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const b of new LocalLogSource(dir, { follow: false }) as AsyncIterable<RecordBatch>) {
    const lines = Buffer.from(b.ndjson!.bytes).toString('utf8').split('\n').slice(0, -1);
    assert.equal(lines.length, b.ndjson!.lines);
    for (const l of lines) out.push(JSON.parse(l));
  }
  return out;
}

interface Started {
  collector: Collector;
  base: string;
  dir: string;
  local: LocalLog;
}

/** A collector on a fresh LocalLog (optionally wrapped), listening on 127.0.0.1:0; closed when the test ends. */
async function start(t: TestContext, options: Partial<CollectorOptions> = {}, wrap?: (log: LocalLog) => EventLog): Promise<Started> {
  const dir = tempDir('collector');
  const local = await LocalLog.open(dir);
  const collector = createCollector({ writeKeys: [KEY], ...options, log: wrap ? wrap(local) : local });
  const { port } = await collector.listen(0);
  t.after(async () => {
    await collector.close();
    await local.close();
  });
  return { collector, base: `http://127.0.0.1:${port}`, dir, local };
}

interface Reply {
  status: number;
  headers: Headers;
  json: { success?: boolean; error?: string; ok?: boolean } | null;
}

async function post(base: string, route: string, body: unknown, o: { key?: string | null; headers?: Record<string, string>; gzip?: boolean; raw?: string | Buffer; method?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...o.headers };
  if (o.key !== null) headers.authorization = basic(o.key ?? KEY);
  let data: string | Buffer = o.raw ?? JSON.stringify(body);
  if (o.gzip) {
    data = gzipSync(data);
    headers['content-encoding'] = 'gzip';
  }
  const r = await fetch(base + route, { method: o.method ?? 'POST', headers, body: o.method === 'GET' ? undefined : data });
  const text = await r.text();
  return { status: r.status, headers: r.headers, json: text === '' ? null : JSON.parse(text) };
}

function assertRefused(r: Reply, status: number, message: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(r.json?.success, false);
  assert.match(r.json?.error ?? '', message);
}

test('options are validated when the collector is made, naming the bad value', async (t) => {
  const dir = tempDir('collector-opts');
  const log = await LocalLog.open(dir);
  t.after(() => log.close());
  const bad: Array<[Partial<CollectorOptions>, RegExp]> = [
    [{ writeKeys: [] }, /writeKeys: an empty list is not valid; expected a non-empty list/],
    [{ writeKeys: undefined }, /writeKeys: undefined is not valid/],
    [{ writeKeys: ['ok', ''] }, /writeKeys\[1\] is not valid \(an empty string\)/],
    [{ writeKeys: ['a:b'] }, /writeKeys\[0\] is not valid \(contains ':'/],
    [{ maxEventBytes: 0 }, /maxEventBytes: 0 is not valid; expected a whole number of bytes/],
    [{ maxEventBytes: 40_000 }, /maxEventBytes: 40000 is not valid; expected at most 32768/],
    [{ maxBatchBytes: 1000 }, /maxBatchBytes: 1000 is not valid; expected at least maxEventBytes \(32768\)/],
    [{ maxBodyBytes: 100_000 }, /maxBodyBytes: 100000 is not valid; expected at least maxBatchBytes \(512000\)/],
    [{ maxPendingBytes: 2.5 }, /maxPendingBytes: 2.5 is not valid/],
    [{ maxPendingBytes: 100_000 }, /maxPendingBytes: 100000 is not valid; expected at least maxBodyBytes \(528384\)/],
    [{ log: {} as EventLog }, /collector log: expected an EventLog/],
  ];
  for (const [o, re] of bad) {
    assert.throws(() => createCollector({ log, writeKeys: [KEY], ...o }), (e: unknown) => e instanceof ConfigError && re.test(e.message), JSON.stringify(o));
  }
  // The secret itself never appears in a message.
  assert.throws(() => createCollector({ log, writeKeys: ['sec:ret'] }), (e: unknown) => e instanceof ConfigError && !e.message.includes('sec:ret'));
  const c = createCollector({ log, writeKeys: [KEY] });
  assert.throws(() => c.listen(70_000), /port: 70000 is not valid/);
  await c.close(); // never listened: still fine
});

test('@segment/analytics-node pointed at the collector: every call arrives in the log intact, field by field', async (t) => {
  const receivedAt = '2026-05-06T07:08:09.123Z';
  const { base, dir } = await start(t, { now: () => Date.parse(receivedAt) });
  const analytics = new Analytics({ writeKey: KEY, host: base, flushAt: 3, flushInterval: 20, maxRetries: 1 });
  // What the client put on the wire, member by member, with its envelope's sentAt.
  const sent: Obj[] = [];
  const statuses: number[] = [];
  const errors: unknown[] = [];
  analytics.on('http_request', (r) => {
    assert.equal(r.url, `${base}/v1/batch`);
    const body = JSON.parse(r.body) as { batch: Obj[]; sentAt: string; writeKey: string };
    assert.equal(body.writeKey, KEY);
    for (const e of body.batch) sent.push({ ...e, sentAt: body.sentAt });
  });
  analytics.on('http_response', (r) => statuses.push(r.status));
  analytics.on('error', (e) => errors.push(e));

  const ts = new Date('2026-01-02T03:04:05.678Z');
  const properties = {
    total: 1234.5,
    tiny: 1e-7,
    maxSafe: Number.MAX_SAFE_INTEGER,
    negative: -42,
    zero: 0,
    flag: false,
    nothing: null,
    products: [
      { sku: 'ü-1', price: 12.99, qty: 2, tags: ['a', 'b'] },
      { sku: '价格', price: 0.1, qty: 1, tags: [] },
    ],
    nested: { deep: { deeper: { deepest: 'yes', list: [1, [2, [3]]] } } },
    text: 'quote " backslash \\ newline \n tab \t nul \u0000 LS \u2028 emoji 😀 RTL עברית',
  };
  const context = { ip: '203.0.113.7', locale: 'fr-FR', campaign: { name: 'Été ☀', source: 'mail', medium: 'email', term: 't', content: 'c' }, device: { id: 'd-1', ids: [1, 2, 3] } };
  analytics.track({ userId: 'user-é', event: 'Order Completed ✓', properties, context, timestamp: ts, messageId: 'client-mid-1' });
  analytics.identify({ userId: 'user-é', traits: { name: 'Zoë Ångström', email: 'zoe@example.com', age: 33, subscription: { tier: 'pro', seats: 5 } }, context });
  analytics.page({ anonymousId: 'anon-1', category: 'Docs', name: 'Getting started 🚀', properties: { path: '/docs?q=1&x=ü', referrer: '' }, timestamp: ts });
  analytics.screen({ userId: 'user-é', name: 'Settings', properties: { dark: true, fontScale: 1.25 } });
  analytics.group({ userId: 'user-é', groupId: 'org-42', traits: { name: 'Initech ™', employees: 420, address: { city: 'Zürich' } } });
  analytics.alias({ userId: 'user-é', previousId: 'anon-1' });
  for (let i = 0; i < 7; i++) analytics.track({ anonymousId: `anon-${i}`, event: 'Tick', properties: { i, half: i / 2 } });
  await analytics.closeAndFlush({ timeout: 15_000 });

  assert.deepEqual(errors, []);
  assert.ok(statuses.length >= 4, `several batches were sent (${statuses.length})`);
  assert.ok(statuses.every((s) => s === 200), `statuses ${statuses}`);
  assert.equal(sent.length, 13);

  const stored = (await readLog(dir)) as Obj[];
  assert.equal(stored.length, 13);
  const byId = new Map(stored.map((r) => [r.messageId as string, r]));
  assert.equal(byId.size, 13, 'messageIds are unique');
  for (const e of sent) {
    const r = byId.get(e.messageId as string);
    assert.ok(r, `event ${e.messageId} is in the log`);
    // Exactly what the client sent (sentAt from its envelope), plus receivedAt from the collector.
    assert.equal(r.writeKey, undefined);
    assert.deepEqual(r, { ...e, receivedAt });
  }

  // And against the calls themselves, field by field.
  const track = byId.get('client-mid-1')!;
  assert.equal(track.type, 'track');
  assert.equal(track.userId, 'user-é');
  assert.equal(track.event, 'Order Completed ✓');
  assert.deepEqual(track.properties, properties);
  assert.deepEqual({ ...(track.context as Obj), library: undefined }, { ...context, library: undefined });
  assert.equal((track.context as { library: { name: string } }).library.name, '@segment/analytics-node');
  assert.equal(track.timestamp, ts.toISOString());
  assert.match(track.sentAt as string, ISO_MS);
  assert.equal(track.receivedAt, receivedAt);
  const ofType = (type: string) => stored.filter((r) => r.type === type);
  const identify = ofType('identify')[0]!;
  assert.deepEqual(identify.traits, { name: 'Zoë Ångström', email: 'zoe@example.com', age: 33, subscription: { tier: 'pro', seats: 5 } });
  assert.equal((identify.context as Obj).locale, 'fr-FR');
  const page = ofType('page')[0]!;
  assert.equal(page.anonymousId, 'anon-1');
  assert.equal(page.name, 'Getting started 🚀');
  assert.equal((page.properties as Obj).path, '/docs?q=1&x=ü');
  assert.equal(page.timestamp, ts.toISOString());
  const screen = ofType('screen')[0]!;
  assert.deepEqual([screen.userId, screen.name, (screen.properties as Obj).fontScale], ['user-é', 'Settings', 1.25]);
  const group = ofType('group')[0]!;
  assert.deepEqual([group.groupId, group.traits], ['org-42', { name: 'Initech ™', employees: 420, address: { city: 'Zürich' } }]);
  const alias = ofType('alias')[0]!;
  assert.deepEqual([alias.userId, alias.previousId], ['user-é', 'anon-1']);
  const ticks = ofType('track').filter((r) => r.event === 'Tick');
  assert.deepEqual(ticks.map((r) => (r.properties as Obj).half).sort(), [0, 0.5, 1, 1.5, 2, 2.5, 3]);
  for (const r of stored) {
    assert.match(r.timestamp as string, ISO_MS);
    assert.equal(r.receivedAt, receivedAt);
    // The pipeline accepts each stored record as one valid event.
    const decoded = decodeRecord(JSON.stringify(r), { fallbackReceivedAtMs: 0 });
    assert.equal(decoded.length, 1);
    assert.ok(!isInvalid(decoded[0]!), JSON.stringify(decoded[0]));
  }
});

test('raw HTTP: write-key auth, gzip, single-call endpoints, the envelope, limits, routes', async (t) => {
  const { base, dir, collector } = await start(t, { writeKeys: ['other-key', KEY] });
  const find = async (marker: string) => ((await readLog(dir)) as Obj[]).filter((r) => r !== null && typeof r === 'object' && (r.properties as Obj | undefined)?.marker === marker);
  const ev = (marker: string, extra: Obj = {}) => ({ type: 'track', event: 'E', userId: 'u1', properties: { marker }, ...extra });

  await t.test('auth: a missing or unknown key is 401; Basic or a body writeKey is accepted', async () => {
    assertRefused(await post(base, '/v1/batch', { batch: [ev('noauth')] }, { key: null }), 401, /missing write key: send it as the HTTP Basic user name/);
    const wrong = await post(base, '/v1/batch', { batch: [ev('wrong')] }, { key: 'nope' });
    assertRefused(wrong, 401, /unknown write key/);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /^Basic /);
    assertRefused(await post(base, '/v1/batch', { batch: [ev('wrongbody')], writeKey: 'nope' }, { key: null }), 401, /unknown write key/);
    assertRefused(await post(base, '/v1/batch', null, { key: null, raw: '{not json' }), 401, /write key/); // nothing more for strangers
    assertRefused(await post(base, '/v1/track', ev('bearer'), { key: null, headers: { authorization: 'Bearer abc' } }), 401, /unknown write key/);
    assert.equal((await post(base, '/v1/batch', { batch: [ev('basic')] })).status, 200);
    assert.equal((await post(base, '/v1/batch', { batch: [ev('basic2')] }, { key: 'other-key' })).status, 200);
    assert.equal((await post(base, '/v1/track', ev('nocolon'), { key: null, headers: { authorization: 'Basic ' + Buffer.from(KEY).toString('base64') } })).status, 200);
    assert.equal((await post(base, '/v1/batch', { batch: [ev('bodykey')], writeKey: KEY }, { key: null })).status, 200);
    assert.equal((await post(base, '/v1/track', { ...ev('bodykey1'), writeKey: KEY }, { key: null })).status, 200);
    for (const m of ['noauth', 'wrong', 'wrongbody', 'bearer']) assert.deepEqual(await find(m), [], m);
    for (const m of ['basic', 'basic2', 'nocolon', 'bodykey', 'bodykey1']) {
      const [r, ...more] = await find(m);
      assert.equal(more.length, 0, m);
      assert.equal(r!.writeKey, undefined, 'the write key is a credential, not stored');
    }
  });

  await t.test('gzip bodies', async () => {
    const r = await post(base, '/v1/batch', { batch: [ev('gz1'), ev('gz2', { type: 'page', name: 'Ü' })] }, { gzip: true });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { success: true });
    assert.equal((await find('gz1')).length, 1);
    assert.equal((await find('gz2'))[0]!.name, 'Ü');
    assertRefused(await post(base, '/v1/batch', null, { raw: 'not gzip at all', headers: { 'content-encoding': 'gzip' } }), 400, /gzip body cannot be decompressed/);
    assertRefused(await post(base, '/v1/batch', { batch: [] }, { headers: { 'content-encoding': 'br' } }), 415, /Content-Encoding "br" is not supported/);
  });

  await t.test('single-call endpoints take the type from the path; a contradicting type is 400', async () => {
    for (const type of EVENT_TYPES) {
      const body = { userId: 'u1', event: 'E', name: 'N', groupId: 'g', previousId: 'p', properties: { marker: `single-${type}` } };
      const r = await post(base, `/v1/${type}`, body);
      assert.equal(r.status, 200, type);
      const [stored] = await find(`single-${type}`);
      assert.equal(stored!.type, type);
      assert.match(stored!.messageId as string, UUID);
      assert.equal((await post(base, `/v1/${type}/?x=1`, { ...body, type, properties: { marker: `same-${type}` } })).status, 200, 'a matching type, a trailing slash and a query are fine');
    }
    const r = await post(base, '/v1/track', { type: 'identify', userId: 'u1', properties: { marker: 'contra' } });
    assertRefused(r, 400, /the body's type "identify" contradicts the endpoint \/v1\/track/);
    assert.deepEqual(await find('contra'), []);
  });

  await t.test('the batch envelope: context/integrations/sentAt copied onto members lacking them; receivedAt always set; messageId kept or made', async () => {
    const now0 = Date.now();
    const r = await post(base, '/v1/import', {
      batch: [
        ev('env1', { messageId: 'mine-1', receivedAt: '2001-01-01T00:00:00Z' }),
        ev('env2', { context: { own: true }, sentAt: '2026-01-01T00:00:00.000Z', messageId: '' }),
        ev('env3', { messageId: 77 }),
      ],
      context: { ip: '198.51.100.1', library: { name: 'x' } },
      integrations: { All: false },
      sentAt: '2026-02-02T02:02:02.222Z',
    });
    assert.equal(r.status, 200);
    const [e1] = await find('env1');
    const [e2] = await find('env2');
    const [e3] = await find('env3');
    assert.deepEqual(e1!.context, { ip: '198.51.100.1', library: { name: 'x' } });
    assert.deepEqual(e1!.integrations, { All: false });
    assert.equal(e1!.sentAt, '2026-02-02T02:02:02.222Z');
    assert.equal(e1!.messageId, 'mine-1');
    assert.deepEqual(e2!.context, { own: true });
    assert.equal(e2!.sentAt, '2026-01-01T00:00:00.000Z');
    assert.match(e2!.messageId as string, UUID);
    assert.equal(e3!.messageId, 77);
    for (const e of [e1!, e2!, e3!]) {
      assert.match(e.receivedAt as string, ISO_MS);
      assert.ok(Math.abs(Date.parse(e.receivedAt as string) - now0) < 60_000);
      assert.equal(e.batch, undefined);
    }
    assert.equal(e1!.receivedAt, e3!.receivedAt, 'one arrival time per request');
    // A single event posted to the batch endpoint, as Segment's Webhooks destination posts every event to one URL.
    assert.equal((await post(base, '/v1/batch', ev('webhook', { type: 'identify', traits: { a: 1 } }))).status, 200);
    assert.equal((await find('webhook'))[0]!.type, 'identify');
    assert.deepEqual((await post(base, '/v1/batch', { batch: [] })).json, { success: true });
  });

  await t.test('events invalid by the spec inside an accepted batch are stored for the pipeline to dead-letter', async () => {
    const r = await post(base, '/v1/batch', {
      batch: [ev('ok'), { type: 'bogus', userId: 'u', properties: { marker: 'bogus' } }, { type: 'track', event: 'NoId', properties: { marker: 'noid' } }, 42, null],
    });
    assert.equal(r.status, 200);
    const all = await readLog(dir);
    for (const m of ['ok', 'bogus', 'noid']) assert.equal((await find(m)).length, 1, m);
    assert.ok(all.includes(42) && all.includes(null), 'non-object members are stored as they came');
    const reasons = ['bogus', 'noid'].map(async (m) => decodeRecord(JSON.stringify((await find(m))[0]), { fallbackReceivedAtMs: 0 })[0]!);
    for (const o of await Promise.all(reasons)) assert.ok(isInvalid(o), 'the pipeline dead-letters it');
    assert.ok(isInvalid(decodeRecord('42', { fallbackReceivedAtMs: 0 })[0]!));
  });

  await t.test('malformed bodies are 400 and nothing is stored', async () => {
    assertRefused(await post(base, '/v1/batch', null, { raw: '{"batch": [' }), 400, /malformed JSON/);
    assertRefused(await post(base, '/v1/batch', null, { raw: '' }), 400, /body is empty/);
    assertRefused(await post(base, '/v1/batch', null, { raw: Buffer.from([0x7b, 0xff, 0x7d]) }), 400, /not valid UTF-8/);
    assertRefused(await post(base, '/v1/batch', [ev('arr')]), 400, /is an array; expected a JSON object/);
    assertRefused(await post(base, '/v1/track', 'str'), 400, /is a string; expected a JSON object/);
    assertRefused(await post(base, '/v1/batch', { batch: { 0: ev('notarray') } }), 400, /"batch" must be an array of events, got object/);
    assertRefused(await post(base, '/v1/batch', { events: [ev('nobatch')] }), 400, /no "batch" array/);
    for (const m of ['arr', 'notarray', 'nobatch']) assert.deepEqual(await find(m), []);
  });

  await t.test('an event over 32 KiB or a batch over 500 KiB refuses the whole request, naming sizes and limits', async () => {
    const big = ev('big', { properties: { marker: 'big', blob: 'x'.repeat(MAX_EVENT_BYTES) } });
    const r1 = await post(base, '/v1/batch', { batch: [ev('before-big'), big] });
    const asStored = Buffer.byteLength(JSON.stringify({ ...big, receivedAt: '2026-01-01T00:00:00.000Z', messageId: randomUUID() }));
    assertRefused(r1, 400, new RegExp(`^event 1 of the batch is ${asStored} bytes as stored \\(with receivedAt, messageId and the batch context\\), larger than the ${MAX_EVENT_BYTES}-byte event limit; nothing from this request was stored$`));
    const r2 = await post(base, '/v1/track', big);
    assertRefused(r2, 400, /the event is \d+ bytes as stored .*larger than the 32768-byte event limit/);
    // Just under the limit as stored passes.
    const fits = ev('fits', { messageId: 'm', properties: { marker: 'fits', blob: '' } });
    const room = MAX_EVENT_BYTES - Buffer.byteLength(JSON.stringify({ ...fits, receivedAt: '2026-01-01T00:00:00.000Z' }));
    assert.equal((await post(base, '/v1/batch', { batch: [{ ...fits, properties: { marker: 'fits', blob: 'é'.repeat(room >> 1) } }] })).status, 200);
    // 20 events of 26 KB: each fits, the 520 KB batch does not (the body limit is a little higher).
    const members = Array.from({ length: 20 }, (_, i) => ev(`huge-${i}`, { properties: { marker: `huge-${i}`, blob: 'y'.repeat(26_000) } }));
    const body = JSON.stringify({ batch: members });
    assert.ok(body.length > MAX_BATCH_BYTES && body.length < MAX_BATCH_BYTES + 16 * 1024);
    assertRefused(await post(base, '/v1/batch', null, { raw: body }), 400, new RegExp(`request body is ${body.length} bytes, larger than the ${MAX_BATCH_BYTES}-byte batch limit`));
    // Beyond the body limit reading stops: 413, also for gzip bodies that only grow when inflated.
    const huge = JSON.stringify({ batch: [ev('huge', { blob: 'z'.repeat(2_000_000) })] });
    assertRefused(await post(base, '/v1/batch', null, { raw: huge }), 413, /request body is 2000\d+ bytes, larger than the 528384-byte limit/);
    const bomb = await post(base, '/v1/batch', null, { raw: huge, gzip: true });
    assertRefused(bomb, 413, /over the 528384-byte limit \(maxBodyBytes\) once decompressed/);
    for (const m of ['before-big', 'big', 'huge-0', 'huge-19', 'huge']) assert.deepEqual(await find(m), [], m);
    assert.equal((await find('fits')).length, 1);
  });

  await t.test('routes: 404, 405, /health', async () => {
    assertRefused(await post(base, '/v1/nope', {}), 404, /no endpoint \/v1\/nope; the collector serves POST \/v1\/batch/);
    assertRefused(await post(base, '/', {}), 404, /no endpoint/);
    const get = await post(base, '/v1/batch', null, { method: 'GET' });
    assertRefused(get, 405, /GET is not allowed on \/v1\/batch; use POST/);
    assert.equal(get.headers.get('allow'), 'POST');
    assertRefused(await post(base, '/v1/track', {}, { method: 'PUT' }), 405, /PUT is not allowed/);
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { ok: true });
    assertRefused(await post(base, '/health', {}), 405, /use GET/);
  });

  const s = collector.stats();
  assert.equal(s.pendingBytes, 0);
  assert.ok(s.acceptedRequests >= 20 && s.acceptedEvents >= s.acceptedRequests);
  assert.ok(s.refused[401]! >= 5 && s.refused[400]! >= 10 && s.refused[413] === 2 && s.refused[404] === 2);
});

/** An EventLog in front of a real one whose appends wait until the gate is opened. */
class GatedLog implements EventLog {
  appends = 0;
  private opened = false;
  private waiting: Array<() => void> = [];
  private onAppend: Array<() => void> = [];
  constructor(private readonly inner: EventLog) {}
  async append(records: string[]): Promise<unknown> {
    this.appends++;
    for (const f of this.onAppend.splice(0)) f();
    if (!this.opened) await new Promise<void>((r) => this.waiting.push(r));
    return this.inner.append(records);
  }
  /** Resolves at the next append call. */
  nextAppend(): Promise<void> {
    return new Promise((r) => this.onAppend.push(r));
  }
  open(): void {
    this.opened = true;
    for (const f of this.waiting.splice(0)) f();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

test('backpressure: beyond maxPendingBytes requests get 429 with Retry-After; after the gate opens exactly the acknowledged events are in the log', async (t) => {
  let gated!: GatedLog;
  const limits = { maxEventBytes: 1024, maxBatchBytes: 2048, maxBodyBytes: 2048, maxPendingBytes: 4096 };
  const { base, dir, collector } = await start(t, limits, (l) => (gated = new GatedLog(l)));
  const batch = (n: number) => ({ batch: [0, 1, 2].map((k) => ({ type: 'track', event: 'E', userId: 'u', messageId: `r${n}-e${k}`, properties: { pad: 'p'.repeat(150) } })) });

  // One at a time until the pending bytes are full: each admitted request reaches the (held) append.
  const admitted: Array<{ n: number; reply: Promise<Reply> }> = [];
  let refused: Reply | undefined;
  for (let n = 0; refused === undefined; n++) {
    assert.ok(n < 10, 'the limit is reached');
    const reply = post(base, '/v1/batch', batch(n));
    const first = await Promise.race([gated.nextAppend().then(() => 'append' as const), reply.then(() => 'reply' as const)]);
    if (first === 'append') admitted.push({ n, reply });
    else refused = await reply;
  }
  assert.ok(admitted.length >= 2, `admitted ${admitted.length}`);
  assertRefused(refused!, 429, /holding \d+ bytes not yet durable \(maxPendingBytes 4096\); retry after 1 s/);
  assert.equal(refused!.headers.get('retry-after'), '1');
  const held = collector.stats().pendingBytes;
  assert.ok(held > 0 && held <= 4096, `pending ${held}`);

  // Concurrent requests beyond the limit: all 429, none reaches the log.
  const burst = await Promise.all(Array.from({ length: 6 }, (_, i) => post(base, '/v1/batch', batch(100 + i))));
  for (const r of burst) {
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '1');
  }
  assert.equal(gated.appends, admitted.length);
  assert.equal((await fetch(`${base}/health`)).status, 200, 'probes still answer');
  // close() waits for the requests in flight.
  let closed = false;
  const closing = collector.close().then(() => (closed = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(closed, false);

  gated.open();
  for (const a of admitted) assert.deepEqual((await a.reply).json, { success: true });
  await closing;
  const ids = ((await readLog(dir)) as Obj[]).map((r) => r.messageId as string).sort();
  assert.deepEqual(ids, admitted.flatMap((a) => [0, 1, 2].map((k) => `r${a.n}-e${k}`)).sort());
  const s = collector.stats();
  assert.equal(s.pendingBytes, 0);
  assert.equal(s.acceptedEvents, admitted.length * 3);
  assert.equal(s.refused[429], 7);
});

test('backpressure under a concurrent burst: what is admitted fits maxPendingBytes, the rest is 429, nothing is buffered beyond it', async (t) => {
  let gated!: GatedLog;
  const limits = { maxEventBytes: 1024, maxBatchBytes: 2048, maxBodyBytes: 2048, maxPendingBytes: 4096 };
  const { base, dir } = await start(t, limits, (l) => (gated = new GatedLog(l)));
  const body = (n: number) => ({ batch: [{ type: 'track', event: 'E', userId: 'u', messageId: `c${n}`, properties: { pad: 'q'.repeat(600) } }] });
  const stored1 = JSON.stringify({ ...body(10).batch[0], receivedAt: '2026-01-01T00:00:00.000Z' }).length;
  const replies = Array.from({ length: 12 }, (_, n) => post(base, '/v1/batch', body(n)).then((r) => ({ n, r })));
  // Wait until every request has either reached the held append or been refused.
  const early: Array<{ n: number; r: Reply }> = [];
  for (const p of replies) void p.then((x) => early.push(x));
  for (let i = 0; gated.appends + early.length < 12; i++) {
    assert.ok(i < 500, 'all requests settle or reach the log');
    await new Promise((r) => setTimeout(r, 10));
  }
  const refused = [...early];
  assert.ok(refused.length >= 1 && refused.every((x) => x.r.status === 429 && x.r.headers.get('retry-after') === '1'), `refused ${refused.map((x) => x.r.status)}`);
  assert.ok(gated.appends >= 1 && gated.appends * stored1 <= 4096, `${gated.appends} appends of ${stored1} bytes`);
  gated.open();
  const all = await Promise.all(replies);
  const ok = all.filter((x) => x.r.status === 200).map((x) => `c${x.n}`);
  assert.equal(ok.length, gated.appends);
  assert.equal(ok.length + refused.length, 12);
  assert.deepEqual(((await readLog(dir)) as Obj[]).map((r) => r.messageId).sort(), ok.sort());
});

test('a 200 is durable: after SIGKILL of the collector process, a fresh LocalLog of the directory holds every acknowledged event', async () => {
  const dir = tempDir('collector-kill');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/collector/collector-child.ts'), dir, KEY], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, sig) => r(sig)));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0]!) as { port: number }).port);
    });
    child.on('exit', () => reject(new Error(`the collector process exited early: ${out}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  const acked: string[] = [];
  const requests = Array.from({ length: 30 }, (_, n) =>
    post(base, '/v1/batch', { batch: [0, 1].map((k) => ({ type: 'track', event: 'Durable', userId: `u${n}`, messageId: `d${n}-${k}` })) }).then(
      (r) => {
        if (r.status === 200) acked.push(`d${n}-0`, `d${n}-1`);
      },
      () => undefined, // cut off by the kill: never acknowledged
    ),
  );
  for (let i = 0; acked.length < 20; i++) {
    assert.ok(i < 20_000, 'requests are acknowledged');
    await new Promise((r) => setTimeout(r, 1));
  }
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  await Promise.all(requests);
  const snapshot = [...acked];

  const reopened = await LocalLog.open(dir);
  const ids = ((await readLog(dir)) as Obj[]).map((r) => r.messageId as string);
  assert.equal(reopened.nextPosition, BigInt(ids.length + 1));
  await reopened.close();
  for (const id of snapshot) assert.ok(ids.includes(id), `acknowledged ${id} is in the log`);
  assert.equal(new Set(ids).size, ids.length);
});

/** An EventLog in front of a real one whose appends fail while `failing` is set. */
class FlakyLog implements EventLog {
  failing = true;
  failures = 0;
  constructor(private readonly inner: EventLog) {}
  append(records: string[]): Promise<unknown> {
    if (!this.failing) return this.inner.append(records);
    this.failures++;
    return Promise.reject(new StorageError('disk full (injected)'));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

test('a failing log: 503 with Retry-After, never a 200; the client retries and the event lands once', async (t) => {
  let flaky!: FlakyLog;
  const { base, dir } = await start(t, {}, (l) => (flaky = new FlakyLog(l)));
  const r = await post(base, '/v1/track', { userId: 'u', event: 'Lost', messageId: 'lost-1' });
  assertRefused(r, 503, /the event log failed, so nothing from this request is acknowledged; retry later \(disk full \(injected\)\)/);
  assert.equal(r.headers.get('retry-after'), '1');
  assert.deepEqual(await readLog(dir), []);

  // analytics-node retries a 503; the second attempt succeeds once the log recovers.
  const analytics = new Analytics({ writeKey: KEY, host: base, flushAt: 1, flushInterval: 10, maxRetries: 3 });
  const statuses: number[] = [];
  analytics.on('http_response', (res) => {
    statuses.push(res.status);
    flaky.failing = false;
  });
  analytics.track({ userId: 'u', event: 'Retried', messageId: 'retried-1' });
  await analytics.closeAndFlush({ timeout: 15_000 });
  assert.deepEqual(statuses, [503, 200]);
  assert.equal(flaky.failures, 2);
  assert.deepEqual(((await readLog(dir)) as Obj[]).map((e) => e.messageId), ['retried-1']);
});
