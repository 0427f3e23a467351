import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Encoder, type EncodedBatch, type EncoderInput } from '../../src/ingest/encoder.ts';
import { DEFAULT_TABLE_OF, EVENT_TYPES, type EventType } from '../../src/events/schema.ts';
import { rng } from '../../src/sample/generate.ts';

const config = { tables: DEFAULT_TABLE_OF, partitionBy: Object.fromEntries(EVENT_TYPES.map((t) => [t, ['dt']])) as unknown as Record<EventType, ['dt']> };

/** Inputs of both kinds: NDJSON lines, and records holding Segment batch envelopes (members re-serialized), multi-byte text included. */
function inputs(seed: number): EncoderInput[] {
  const rand = rng(seed);
  const event = (i: number) => {
    const day = 20 + Math.floor(rand() * 3);
    const base = { anonymousId: `a${i}`, receivedAt: `2026-11-${day}T0${Math.floor(rand() * 9)}:00:00.000Z`, properties: { pad: 'ü☕'.repeat(Math.floor(rand() * 200)) } };
    if (rand() < 0.7) return { ...base, type: 'track', event: ['Viewed', 'Clicked', 'Café ☕'][i % 3], ...(i % 4 === 0 ? {} : { messageId: `m${i}` }) };
    return { ...base, type: 'page', name: 'Home', messageId: `p${i}` };
  };
  const out: EncoderInput[] = [];
  let i = 0;
  for (let b = 0; b < 6; b++) {
    const n = 50 + Math.floor(rand() * 400);
    const ctx = { fallbackReceivedAtMs: 0 };
    if (b % 2 === 0) {
      const lines = Array.from({ length: n }, () => JSON.stringify(event(i++)));
      lines.push('{"type":"track"}'); // invalid: neither id
      out.push({ kind: 'ndjson', bytes: Buffer.from(lines.join('\n') + '\n'), ctx, firstLineOfFile: b === 0 });
    } else {
      const texts = Array.from({ length: n }, () => JSON.stringify({ batch: [event(i++), event(i++)], context: { locale: 'fr-FR' } }));
      out.push({ kind: 'records', texts, ctx });
    }
  }
  return out;
}

/** A plain copy of a result's groups (views of its buffer read out before the buffer is reused). */
function snapshot(b: EncodedBatch): unknown {
  return {
    invalid: b.invalid,
    events: b.events,
    records: b.records,
    groups: b.groups.map((g) => ({ table: g.table, pairs: g.pairs, partKey: g.partKey, events: g.events, bytes: Buffer.from(g.bytes).toString('utf8'), record: [...g.record], sub: [...g.sub], offsets: [...g.offsets], receivedAt: [...g.receivedAt], eventOf: [...g.eventOf] })),
  };
}

test('an encoder reusing its output buffers (holding stale bytes) gives exactly what a fresh encoder gives', () => {
  const reusing = new Encoder(config);
  let reused = 0;
  let last: ArrayBuffer | null = null;
  for (const input of inputs(7)) {
    const fresh = snapshot(new Encoder(config).encode(input));
    const got = reusing.encode(input);
    if (got.buffer !== null && got.buffer === last) reused++;
    assert.deepEqual(snapshot(got), fresh);
    // Offsets start at 0 and end at the group's size, whatever the buffer held before.
    for (const g of got.groups) {
      assert.equal(g.offsets[0], 0);
      assert.equal(g.offsets[g.offsets.length - 1], g.bytes.length);
    }
    if (got.buffer !== null) {
      new Uint8Array(got.buffer).fill(0xff); // stale contents
      reusing.recycle([got.buffer]);
      last = got.buffer;
    }
  }
  assert.ok(reused >= 4, `the recycled buffer was used again (${reused} times)`);
});

test('a group whose lines outgrow the reused buffer gets a new one, and a detached buffer is not taken back', () => {
  const enc = new Encoder(config);
  const small = enc.encode(inputs(3)[0]!);
  // ~3.3 MB of lines: more than any buffer the encoder holds.
  const lines = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ type: 'track', event: 'E', anonymousId: `a${i}`, receivedAt: '2026-11-20T00:00:00Z', properties: { pad: 'x'.repeat(1000) } }));
  enc.recycle([small.buffer!]);
  const out = enc.encode({ kind: 'ndjson', bytes: Buffer.from(lines.join('\n') + '\n'), ctx: { fallbackReceivedAtMs: 0 }, firstLineOfFile: true });
  assert.notEqual(out.buffer, small.buffer);
  assert.ok(out.buffer!.byteLength > small.buffer!.byteLength);
  const spooled = Buffer.from(out.groups[0]!.bytes).toString('utf8').split('\n').slice(0, -1).map((l) => JSON.parse(l).e.anonymousId);
  assert.deepEqual(spooled, lines.map((_, i) => `a${i}`));
  const detached = new ArrayBuffer(8);
  structuredClone(detached, { transfer: [detached] });
  enc.recycle([detached]); // length 0 now: ignored
  assert.equal(enc.encode(inputs(3)[0]!).buffer, small.buffer);
});
