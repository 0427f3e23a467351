import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { LakeQuery, queryLive } from '../../src/query/lake-query.ts';
import { FileSource } from '../../src/source/file-source.ts';
import type { RecordBatch, Source } from '../../src/source/source.ts';
import { tempDir } from '../support/tmp.ts';

// Lines JSON.parse accepts (or bytes it would read with U+FFFD) that DuckDB's JSON reader refuses
// or reads differently; each used to fail the whole write, and so the run, again on every retry.
const at = '"receivedAt":"2026-12-01T10:00:00Z"';
// Another day, so another spool: one without repeated keys, which DuckDB reads as a STRUCT (case-insensitive names).
const day2 = '"receivedAt":"2026-12-02T10:00:00Z"';
const LINES: Array<{ bytes: Buffer; id: string; outcome: 'written' | RegExp }> = [
  { id: 'utf8-a', bytes: Buffer.concat([Buffer.from(`{"type":"track","event":"E","anonymousId":"a","messageId":"utf8-a",${at},"properties":{"x":"`), Buffer.from([0xff, 0xfe]), Buffer.from('"}}')]), outcome: /^not valid UTF-8/ },
  { id: 'utf8-b', bytes: Buffer.concat([Buffer.from(`{"type":"track","event":"E`), Buffer.from([0xc3]), Buffer.from(`","anonymousId":"a","messageId":"utf8-b",${at}}`)]), outcome: /^not valid UTF-8/ },
  { id: 'lone-high', bytes: Buffer.from(`{"type":"track","event":"E","anonymousId":"a","messageId":"lone-high",${at},"properties":{"x":"\\ud800"}}`), outcome: /^unpaired surrogate \\ud800 in a string/ },
  { id: 'lone-low', bytes: Buffer.from(`{"type":"track","event":"E","anonymousId":"a","messageId":"lone-low",${at},"properties":{"x":"a\\udc00"}}`), outcome: /^unpaired surrogate \\udc00/ },
  { id: 'escaped-backslash', bytes: Buffer.from(`{"type":"track","event":"E","anonymousId":"a","messageId":"escaped-backslash",${at},"properties":{"x":"\\\\ud800"}}`), outcome: 'written' },
  { id: 'pair', bytes: Buffer.from(`{"type":"track","event":"E","anonymousId":"a","messageId":"pair",${at},"properties":{"x":"\\ud83d\\ude00"}}`), outcome: 'written' },
  { id: 'nul', bytes: Buffer.from(`{"type":"track","event":"E","anonymousId":"a","messageId":"nul",${at},"properties":{"x":"a\\u0000b"}}`), outcome: 'written' },
  { id: 'dup-event', bytes: Buffer.from(`{"type":"track","event":"First","event":"Last","anonymousId":"a","messageId":"dup-event",${at}}`), outcome: 'written' },
  { id: 'dup-props', bytes: Buffer.from(`{"type":"track","event":"E","anonymousId":"a","messageId":"dup-props",${at},"properties":{"n":1},"properties":{"n":2}}`), outcome: 'written' },
  { id: 'case-ctx', bytes: Buffer.from(`{"type":"track","event":"E","anonymousId":"a","messageId":"case-ctx",${at},"Context":{"ip":"2.2.2.2"},"context":{"ip":"1.1.1.1"}}`), outcome: 'written' },
  { id: 'case-user', bytes: Buffer.from(`{"type":"track","event":"E","anonymousId":"a","UserId":"wrong","userId":"u1","messageId":"case-user",${at}}`), outcome: 'written' },
  { id: 'case-lone-user', bytes: Buffer.from(`{"type":"track","event":"E","anonymousId":"a","UserId":"not-validated","messageId":"case-lone-user",${day2}}`), outcome: 'written' },
  { id: 'case-lone-props', bytes: Buffer.from(`{"type":"track","event":"E","anonymousId":"a","PROPERTIES":{"x":"no"},"messageId":"case-lone-props",${day2}}`), outcome: 'written' },
  { id: 'numeric-ids', bytes: Buffer.from(`{"type":"track","event":"E","anonymousId":42,"userId":7,"messageId":"numeric-ids",${at}}`), outcome: 'written' },
  { id: 'batch-lone', bytes: Buffer.from(`{"batch":[{"type":"track","event":"B\\udbff","anonymousId":"a","messageId":"batch-lone",${at}},{"type":"track","event":"B","anonymousId":"a","messageId":"batch-ok",${at}}]}`), outcome: /^unpaired surrogate \\udbff/ },
];

test('bytes and JSON the writer cannot read go to the dead letters (lossless) or are read as decoded; the run never fails', async () => {
  const dir = tempDir('hostile');
  const input = path.join(dir, 'in.ndjson');
  writeFileSync(input, Buffer.concat(LINES.flatMap((l) => [l.bytes, Buffer.from('\n')])));
  const { storage, catalog } = openLocalLake(`${dir}/lake`);
  const stats = await new Ingestor(storage, catalog, { decodeWorkers: 1 }).run(new FileSource([input]));
  const refused = LINES.filter((l) => l.outcome !== 'written');
  assert.deepEqual([stats.read, stats.deadLettered, stats.written], [LINES.length + 1, refused.length, LINES.length + 1 - refused.length]);

  // Each refused line: its reason, and its exact bytes (base64 where they are not UTF-8).
  const dead = readdirSync(`${dir}/lake/_deadletter`, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .flatMap((e) => readFileSync(path.join(e.parentPath, e.name), 'utf8').trim().split('\n'))
    .map((l) => JSON.parse(l) as { reason: string; raw: string; rawBase64?: string; record: string; index: number });
  assert.equal(dead.length, refused.length);
  for (const l of refused) {
    const line = LINES.indexOf(l) + 1;
    const d = dead.find((x) => Number(x.record) === line && x.index === 0);
    assert.ok(d, `${l.id}: dead-lettered`);
    assert.match(d.reason, l.outcome as RegExp, l.id);
    if (l.id.startsWith('utf8')) assert.deepEqual(Buffer.from(d.rawBase64!, 'base64'), l.bytes, `${l.id}: bytes kept`);
    else if (l.id === 'batch-lone') assert.deepEqual(JSON.parse(d.raw).messageId, 'batch-lone', 'the member alone');
    else assert.equal(d.raw, l.bytes.toString('utf8'), l.id);
  }

  const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
  try {
    const r = await q.query("SELECT message_id, event, user_id, anonymous_id, json_extract_string(properties, '$.x') AS x, properties FROM tracks ORDER BY 1");
    const rows = Object.fromEntries(r.rows.map((row) => [row[0] as string, row.slice(1)]));
    assert.deepEqual(Object.keys(rows).sort(), ['batch-ok', 'case-ctx', 'case-lone-props', 'case-lone-user', 'dup-event', 'dup-props', 'escaped-backslash', 'case-user', 'nul', 'numeric-ids', 'pair'].sort());
    // A key given twice (or in two cases): the file is written by the tolerant reader, which takes
    // the last value of a name matched exactly, as JSON.parse (validation, routing) reads it.
    assert.deepEqual(rows['dup-event']!.slice(0, 1), ['Last']);
    assert.deepEqual(rows['case-user']!.slice(1, 2), ['u1'], 'userId, not UserId');
    // A lone key that differs from a field only in case is not that field (validation never saw it).
    assert.deepEqual(rows['case-lone-user']!.slice(1, 3), [null, 'a'], 'UserId alone is not user_id');
    assert.deepEqual([rows['case-lone-props']![3], rows['case-lone-props']![4]], [null, null], 'PROPERTIES alone is not properties');
    const ctx = await q.query("SELECT context_ip FROM tracks WHERE message_id = 'case-ctx'");
    assert.deepEqual(ctx.rows, [['1.1.1.1']], 'context, not Context');
    assert.deepEqual(rows['numeric-ids']!.slice(1, 3), ['7', '42']);
    assert.equal(rows['escaped-backslash']![3], '\\ud800');
    assert.equal(rows['pair']![3], '😀');
    assert.equal(rows['nul']![3], 'a\u0000b');
    assert.deepEqual(JSON.parse(rows['dup-props']![4] as string), { n: 2 });
  } finally {
    q.close();
  }
});

/** One batch of records, then nothing until released: its rows stay live. */
class HeldSource implements Source {
  readonly name = 'held';
  release!: () => void;
  private readonly released = new Promise<void>((r) => (this.release = r));
  constructor(private readonly records: string[]) {}
  async *[Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
    yield { shard: 's1', fallbackReceivedAtMs: 0, records: this.records.map((data, i) => ({ position: BigInt(i + 1), data })) };
    await this.released;
  }
}

test('a live query over a spool holding an event that repeats a key reads it as the file will be written', async () => {
  const dir = tempDir('hostilelive');
  const { storage, catalog } = openLocalLake(`${dir}/lake`);
  const source = new HeldSource([
    JSON.stringify({ type: 'track', event: 'E', anonymousId: 'a', messageId: 'ok', receivedAt: '2026-12-01T10:00:00Z', properties: { n: 0 } }),
    `{"type":"track","event":"E","anonymousId":"b","messageId":"dup","receivedAt":"2026-12-01T10:00:00Z","properties":{"n":1},"properties":{"n":2}}`,
  ]);
  const ingestor = new Ingestor(storage, catalog, { decodeWorkers: 1 });
  const running = ingestor.run(source);
  const sql = "SELECT message_id, json_extract(properties, '$.n')::INT AS n FROM tracks ORDER BY 1";
  let rows: unknown[][] = [];
  try {
    for (let i = 0; i < 100 && rows.length < 2; i++) {
      rows = (await queryLive(storage, catalog, ingestor, sql, { builtinViews: false })).rows;
      if (rows.length < 2) await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    source.release(); // whatever happened, let the run end
  }
  assert.deepEqual(rows, [['dup', 2], ['ok', 0]]);
  const stats = await running;
  assert.deepEqual([stats.written, stats.files], [2, 1]);
  const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
  try {
    assert.deepEqual((await q.query(sql)).rows, [['dup', 2], ['ok', 0]], 'the committed file says the same');
  } finally {
    q.close();
  }
});
