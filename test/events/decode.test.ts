import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  MAX_BATCH_BYTES,
  MAX_EVENT_BYTES,
  decodeRecord,
  isInvalid,
  type DecodeOutcome,
  type DecodedEvent,
  type InvalidRecord,
} from '../../src/events/decode.ts';

const FALLBACK = Date.UTC(2026, 0, 15, 12, 0, 0);
const CTX = { fallbackReceivedAtMs: FALLBACK };

/** Decodes one JSON value (or raw text) and expects exactly one outcome. */
function one(input: unknown, ctx: { fallbackReceivedAtMs: number; stampReceivedAt?: boolean } = CTX): DecodeOutcome {
  const text = typeof input === 'string' ? input : JSON.stringify(input);
  const out = decodeRecord(text, ctx);
  assert.equal(out.length, 1, `one outcome for ${text.slice(0, 200)}`);
  return out[0]!;
}

function refused(input: unknown, reason: RegExp): InvalidRecord {
  const text = typeof input === 'string' ? input : JSON.stringify(input);
  const o = one(text);
  assert.ok(isInvalid(o), `expected a refusal for ${text.slice(0, 200)}, got ${JSON.stringify(o).slice(0, 300)}`);
  assert.match(o.reason, reason);
  assert.equal(o.raw, text, 'the dead letter keeps the exact input text');
  return o;
}

function accepted(input: unknown, ctx?: { fallbackReceivedAtMs: number; stampReceivedAt?: boolean }): DecodedEvent {
  const o = one(input, ctx);
  assert.ok(!isInvalid(o), `expected a valid event, got reason: ${(o as InvalidRecord).reason}`);
  return o;
}

const track = (extra: Record<string, unknown> = {}) => ({ type: 'track', event: 'Clicked', anonymousId: 'anon-1', ...extra });

describe('isInvalid', () => {
  test('is true for a refusal and false for a decoded event', () => {
    assert.equal(isInvalid({ reason: 'x', raw: '{}' }), true);
    const ok = decodeRecord(JSON.stringify(track()), CTX)[0]!;
    assert.equal(isInvalid(ok), false);
  });
});

describe('decodeRecord refusals', () => {
  test('malformed JSON', () => {
    for (const text of ['{', '{"type":"track",}', 'not json', '', "{'type':'track'}"]) {
      refused(text, /^malformed JSON: /);
    }
  });

  test('JSON that is not an object names what it got', () => {
    refused('[1,2]', /^not a JSON object \(got array\)$/);
    refused('[]', /^not a JSON object \(got array\)$/);
    refused('null', /^not a JSON object \(got null\)$/);
    refused('"just a string"', /^not a JSON object \(got string\)$/);
    refused('42', /^not a JSON object \(got number\)$/);
    refused('true', /^not a JSON object \(got boolean\)$/);
  });

  test('a record larger than the 500 KB batch limit is refused without parsing', () => {
    assert.equal(MAX_BATCH_BYTES, 500 * 1024);
    const big = '{' + ' '.repeat(MAX_BATCH_BYTES) + '}'; // valid JSON, but too long
    const o = refused(big, /^record is 512002 bytes, larger than the 512000-byte batch limit$/);
    assert.equal(o.raw.length, MAX_BATCH_BYTES + 2);
    // Not parsed at all: even unparseable text of that size gets the size reason, not "malformed JSON".
    refused('x'.repeat(MAX_BATCH_BYTES + 1), /^record is 512001 bytes, larger than/);
  });

  test('a batch of exactly 500 KB is accepted, one byte more is refused', () => {
    const base = JSON.stringify({ batch: [track({ messageId: 'a' }), track({ messageId: 'b' })] });
    const exact = base + ' '.repeat(MAX_BATCH_BYTES - base.length);
    assert.equal(Buffer.byteLength(exact), MAX_BATCH_BYTES);
    const out = decodeRecord(exact, CTX);
    assert.equal(out.length, 2);
    assert.ok(out.every((o) => !isInvalid(o)));
    const over = exact + ' ';
    const o = decodeRecord(over, CTX);
    assert.equal(o.length, 1);
    assert.ok(isInvalid(o[0]!));
    assert.match((o[0] as InvalidRecord).reason, /batch limit/);
  });

  test(
    'a batch record over 500 KB in UTF-8 bytes but under 500 K characters is refused',
    () => {
      // 30 members of ~20 KB bytes (10 000 'é', 2 bytes each): each under the 32 KB event limit,
      // the whole record ~602 000 bytes but only ~302 000 characters.
      const member = track({ properties: { s: 'é'.repeat(10_000) } });
      const text = JSON.stringify({ batch: Array.from({ length: 30 }, () => member) });
      assert.ok(text.length < MAX_BATCH_BYTES);
      assert.ok(Buffer.byteLength(text) > MAX_BATCH_BYTES);
      const out = decodeRecord(text, CTX);
      assert.equal(out.length, 1);
      assert.ok(isInvalid(out[0]!));
      assert.match((out[0] as InvalidRecord).reason, /^record is \d+ bytes, larger than the 512000-byte batch limit$/);
    },
  );

  test('an event larger than 32 KB is refused', () => {
    assert.equal(MAX_EVENT_BYTES, 32 * 1024);
    const ev = track({ properties: { pad: 'x'.repeat(MAX_EVENT_BYTES) } });
    const text = JSON.stringify(ev);
    refused(text, new RegExp(`^event is ${Buffer.byteLength(text)} bytes, larger than the 32768-byte limit$`));
  });

  test('the 32 KB event limit counts UTF-8 bytes, not characters', () => {
    // 11 000 '€' are 33 000 bytes in UTF-8 but only 11 000 characters.
    const ev = track({ properties: { pad: '€'.repeat(11_000) } });
    const text = JSON.stringify(ev);
    assert.ok(text.length < 32_768);
    const bytes = Buffer.byteLength(text);
    assert.ok(bytes > MAX_EVENT_BYTES);
    refused(text, new RegExp(`^event is ${bytes} bytes, larger than the 32768-byte limit$`));
    // Astral characters: 2 UTF-16 units, 4 bytes each.
    const emoji = JSON.stringify(track({ properties: { pad: '😀'.repeat(8_300) } }));
    assert.ok(emoji.length < 32_768);
    refused(emoji, /^event is \d+ bytes, larger than the 32768-byte limit$/);
  });

  test('an event of exactly 32 KB is accepted, one byte more is refused', () => {
    const base = JSON.stringify(track({ messageId: 'm' }));
    const exact = base.slice(0, -1) + ' '.repeat(MAX_EVENT_BYTES - base.length) + '}';
    assert.equal(Buffer.byteLength(exact), MAX_EVENT_BYTES);
    assert.equal(accepted(exact).messageId, 'm');
    const over = base.slice(0, -1) + ' '.repeat(MAX_EVENT_BYTES - base.length + 1) + '}';
    refused(over, /^event is 32769 bytes, larger than the 32768-byte limit$/);
  });

  test('a batch member over 32 KB is refused on its own', () => {
    const big = track({ messageId: 'big', properties: { pad: 'ü'.repeat(17_000) } });
    const small = track({ messageId: 'small' });
    const out = decodeRecord(JSON.stringify({ batch: [big, small] }), CTX);
    assert.equal(out.length, 2);
    assert.ok(isInvalid(out[0]!));
    assert.match((out[0] as InvalidRecord).reason, /^event is \d+ bytes, larger than the 32768-byte limit$/);
    assert.ok(!isInvalid(out[1]!));
    assert.equal((out[1] as DecodedEvent).messageId, 'small');
  });

  test('unknown or missing type', () => {
    refused({ type: 'bogus', anonymousId: 'a' }, /^type "bogus" is not one of track, identify, page, screen, group, alias$/);
    refused({ anonymousId: 'a' }, /^type missing is not one of track, identify, page, screen, group, alias$/);
    refused({ type: 'Track', event: 'x', anonymousId: 'a' }, /^type "Track" is not one of/);
    refused({ type: 3, anonymousId: 'a' }, /^type 3 is not one of/);
    refused({ type: null, anonymousId: 'a' }, /^type null is not one of/);
    refused({ type: ['track'], anonymousId: 'a' }, /^type \["track"\] is not one of/);
  });

  test('neither userId nor anonymousId', () => {
    const reason = /^neither userId nor anonymousId is set$/;
    refused({ type: 'identify' }, reason);
    refused({ type: 'identify', userId: '', anonymousId: '' }, reason);
    refused({ type: 'identify', userId: '' }, reason);
    refused({ type: 'identify', anonymousId: '' }, reason);
    refused({ type: 'identify', userId: null, anonymousId: null }, reason);
    refused({ type: 'track', event: 'x' }, reason);
  });

  test('either id alone is enough, and a numeric userId counts', () => {
    assert.equal(accepted({ type: 'identify', userId: 'u1' }).type, 'identify');
    assert.equal(accepted({ type: 'identify', anonymousId: 'a1' }).type, 'identify');
    assert.equal(accepted({ type: 'identify', userId: 12345 }).type, 'identify');
    assert.equal(accepted({ type: 'identify', userId: 0 }).type, 'identify');
    assert.equal(accepted({ type: 'identify', userId: '', anonymousId: 'a1' }).type, 'identify');
  });

  test('track needs a non-empty string event', () => {
    const reason = /^track without a non-empty string "event"$/;
    refused({ type: 'track', anonymousId: 'a' }, reason);
    refused({ type: 'track', anonymousId: 'a', event: '' }, reason);
    refused({ type: 'track', anonymousId: 'a', event: null }, reason);
    refused({ type: 'track', anonymousId: 'a', event: 42 }, reason);
  });

  test('group needs groupId, alias needs previousId', () => {
    refused({ type: 'group', userId: 'u' }, /^group without groupId$/);
    refused({ type: 'group', userId: 'u', groupId: '' }, /^group without groupId$/);
    refused({ type: 'alias', userId: 'u' }, /^alias without previousId$/);
    refused({ type: 'alias', userId: 'u', previousId: '' }, /^alias without previousId$/);
    assert.equal(accepted({ type: 'group', userId: 'u', groupId: 'g' }).type, 'group');
    assert.equal(accepted({ type: 'group', userId: 'u', groupId: 7 }).type, 'group');
    assert.equal(accepted({ type: 'alias', userId: 'u', previousId: 'p' }).type, 'alias');
  });

  test('string fields that are objects, arrays or booleans are refused with the field named', () => {
    const base = { type: 'track', event: 'e', anonymousId: 'a', userId: 'u', groupId: 'g', previousId: 'p', name: 'n', messageId: 'm' };
    for (const f of ['messageId', 'event', 'name', 'userId', 'anonymousId', 'groupId', 'previousId']) {
      refused({ ...base, [f]: { nested: true } }, new RegExp(`^${f} must be a string, got object$`));
      refused({ ...base, [f]: ['a'] }, new RegExp(`^${f} must be a string, got array$`));
      refused({ ...base, [f]: true }, new RegExp(`^${f} must be a string, got boolean$`));
    }
    // The check applies to every type, not only those that use the field.
    refused({ type: 'page', anonymousId: 'a', name: { x: 1 } }, /^name must be a string, got object$/);
    refused({ type: 'identify', userId: 'u', groupId: [] }, /^groupId must be a string, got array$/);
  });

  for (const field of ['timestamp', 'originalTimestamp', 'sentAt', 'receivedAt']) {
    test(`an invalid ${field} is refused`, () => {
      for (const bad of ['yesterday', '2026-02-30T00:00:00Z', '2026-13-01', '', '1']) {
        refused(track({ [field]: bad }), new RegExp(`^${field} ${escapeRe(JSON.stringify(bad))} is not an ISO-8601 date$`));
      }
      refused(track({ [field]: 12345 }), new RegExp(`^${field} 12345 is not an ISO-8601 date$`));
      refused(track({ [field]: true }), new RegExp(`^${field} true is not an ISO-8601 date$`));
      refused(track({ [field]: { d: 1 } }), new RegExp(`^${field} \\{"d":1\\} is not an ISO-8601 date$`));
    });

    test(`a null ${field} is treated as absent`, () => {
      const withNull = accepted(track({ messageId: 'm', [field]: null }));
      const without = accepted(track({ messageId: 'm' }));
      assert.equal(withNull.receivedAtMs, without.receivedAtMs);
      assert.equal(withNull.timestampMs, without.timestampMs);
      assert.equal(withNull.originalTimestampMs, null);
      assert.equal(withNull.sentAtMs, null);
      assert.equal(withNull.receivedAtMs, FALLBACK);
    });
  }
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('decodeRecord valid events', () => {
  test('a full track event', () => {
    const text = JSON.stringify({
      type: 'track',
      event: 'Order Completed',
      userId: 'u1',
      messageId: 'msg-1',
      timestamp: '2026-03-01T10:00:00.250Z',
      originalTimestamp: '2026-03-01T09:59:59Z',
      sentAt: '2026-03-01T10:00:01Z',
      receivedAt: '2026-03-01T10:00:02+01:00',
      properties: { revenue: 9.5 },
    });
    const e = accepted(text);
    assert.deepEqual(e, {
      type: 'track',
      messageId: 'msg-1',
      receivedAtMs: Date.UTC(2026, 2, 1, 9, 0, 2),
      timestampMs: Date.UTC(2026, 2, 1, 10, 0, 0, 250),
      originalTimestampMs: Date.UTC(2026, 2, 1, 9, 59, 59),
      sentAtMs: Date.UTC(2026, 2, 1, 10, 0, 1),
      event: 'Order Completed',
      raw: text,
    });
  });

  test('refused: an unpaired surrogate escape (line or batch member); accepted: a pair, an escaped backslash, keys in other cases', () => {
    const base = { type: 'track', event: 'E', anonymousId: 'a', messageId: 'x' };
    const reason = (text: string) => decodeRecord(text, { fallbackReceivedAtMs: 0 }).map((o) => (isInvalid(o) ? o.reason : 'ok'));
    // JSON.stringify writes a lone surrogate as its \u escape, which JSON.parse reads back.
    assert.deepEqual(reason(JSON.stringify({ ...base, traits: {}, TRAITS: {}, Event: 'x' })), ['ok'], 'the writer reads such events tolerantly');
    assert.deepEqual(reason(JSON.stringify({ ...base, properties: { s: '\ud800' } })), ['unpaired surrogate \\ud800 in a string: not representable in UTF-8']);
    assert.deepEqual(reason(JSON.stringify({ ...base, properties: { s: '\udfff' } })), ['unpaired surrogate \\udfff in a string: not representable in UTF-8']);
    assert.deepEqual(reason(JSON.stringify({ ...base, properties: { s: '\ud800x' } })), ['unpaired surrogate \\ud800 in a string: not representable in UTF-8']);
    assert.deepEqual(reason(JSON.stringify({ ...base, properties: { s: '\\ud800' } })), ['ok'], 'an escaped backslash then "ud800"');
    assert.deepEqual(reason(JSON.stringify({ ...base, properties: { s: '😀', t: '\ud83d\ude00' } })), ['ok']);
    assert.deepEqual(reason(JSON.stringify({ batch: [{ ...base, properties: { s: '\udc00' } }, base] })), ['unpaired surrogate \\udc00 in a string: not representable in UTF-8', 'ok']);
  });

  test('event is null for every non-track type', () => {
    const cases: Array<Record<string, unknown>> = [
      { type: 'identify', userId: 'u', event: 'ignored' },
      { type: 'page', anonymousId: 'a', name: 'Home', event: 'ignored' },
      { type: 'screen', anonymousId: 'a', name: 'Main' },
      { type: 'group', userId: 'u', groupId: 'g' },
      { type: 'alias', userId: 'u', previousId: 'p' },
    ];
    for (const c of cases) {
      const e = accepted(c);
      assert.equal(e.type, c.type);
      assert.equal(e.event, null, `${String(c.type)} has no event`);
    }
    assert.equal(accepted(track({ event: 'Clicked' })).event, 'Clicked');
  });

  test('raw is the exact input text of a plain line, whitespace and key order included', () => {
    const text = '  { "anonymousId" : "a",   "event":"E", "type":"track" }  ';
    assert.equal(accepted(text).raw, text);
  });

  describe('receivedAt', () => {
    test('comes from receivedAt first', () => {
      const e = accepted(track({ receivedAt: '2026-05-05T05:05:05Z', timestamp: '2026-01-01T00:00:00Z' }));
      assert.equal(e.receivedAtMs, Date.UTC(2026, 4, 5, 5, 5, 5));
      assert.equal(e.timestampMs, Date.UTC(2026, 0, 1));
    });

    test('else from timestamp', () => {
      const e = accepted(track({ timestamp: '2026-01-01T00:00:00Z', originalTimestamp: '2025-01-01T00:00:00Z' }));
      assert.equal(e.receivedAtMs, Date.UTC(2026, 0, 1));
    });

    test('else from fallbackReceivedAtMs', () => {
      const e = accepted(track({ originalTimestamp: '2025-01-01T00:00:00Z' }), { fallbackReceivedAtMs: 123_456 });
      assert.equal(e.receivedAtMs, 123_456);
      assert.equal(accepted(track(), { fallbackReceivedAtMs: 42 }).receivedAtMs, 42);
    });

    test('stampReceivedAt: true overrides the record receivedAt and timestamp', () => {
      const ev = track({ receivedAt: '2026-05-05T05:05:05Z', timestamp: '2026-01-01T00:00:00Z' });
      const e = accepted(ev, { fallbackReceivedAtMs: 999, stampReceivedAt: true });
      assert.equal(e.receivedAtMs, 999);
      assert.equal(e.timestampMs, Date.UTC(2026, 0, 1), 'timestamp itself is kept');
      const off = accepted(ev, { fallbackReceivedAtMs: 999, stampReceivedAt: false });
      assert.equal(off.receivedAtMs, Date.UTC(2026, 4, 5, 5, 5, 5));
    });

    test('stampReceivedAt still validates the record receivedAt', () => {
      const o = one(track({ receivedAt: 'nope' }), { fallbackReceivedAtMs: 1, stampReceivedAt: true });
      assert.ok(isInvalid(o));
      assert.match(o.reason, /^receivedAt "nope" is not an ISO-8601 date$/);
    });
  });

  describe('timestamp', () => {
    test('is kept when present', () => {
      const e = accepted(track({ timestamp: '2026-02-02T02:02:02.002Z', receivedAt: '2026-02-03T00:00:00Z' }));
      assert.equal(e.timestampMs, Date.UTC(2026, 1, 2, 2, 2, 2, 2));
    });

    test('is receivedAt - (sentAt - originalTimestamp) when missing (Segment clock-skew rule)', () => {
      // The client clock is 1 hour fast: it says it sent at 11:00:05 an event from 11:00:00; it arrived at 10:00:07 server time.
      const e = accepted(
        track({ originalTimestamp: '2026-03-01T11:00:00Z', sentAt: '2026-03-01T11:00:05Z', receivedAt: '2026-03-01T10:00:07Z' }),
      );
      assert.equal(e.timestampMs, Date.UTC(2026, 2, 1, 10, 0, 2));
      assert.equal(e.originalTimestampMs, Date.UTC(2026, 2, 1, 11, 0, 0));
      assert.equal(e.sentAtMs, Date.UTC(2026, 2, 1, 11, 0, 5));
      assert.equal(e.receivedAtMs, Date.UTC(2026, 2, 1, 10, 0, 7));
    });

    test('the skew rule uses the fallback receivedAt when the record has none', () => {
      const e = accepted(track({ originalTimestamp: '2026-03-01T11:00:00Z', sentAt: '2026-03-01T11:00:05Z' }), { fallbackReceivedAtMs: 1_000_000 });
      assert.equal(e.receivedAtMs, 1_000_000);
      assert.equal(e.timestampMs, 1_000_000 - 5_000);
    });

    test('is originalTimestamp when sentAt is missing, else receivedAt', () => {
      const a = accepted(track({ originalTimestamp: '2026-03-01T11:00:00Z', receivedAt: '2026-03-02T00:00:00Z' }));
      assert.equal(a.timestampMs, Date.UTC(2026, 2, 1, 11));
      const b = accepted(track({ sentAt: '2026-03-01T11:00:05Z', receivedAt: '2026-03-02T00:00:00Z' }));
      assert.equal(b.timestampMs, Date.UTC(2026, 2, 2));
      assert.equal(b.sentAtMs, Date.UTC(2026, 2, 1, 11, 0, 5));
      assert.equal(b.originalTimestampMs, null);
    });
  });

  describe('messageId', () => {
    test('is kept as sent', () => {
      assert.equal(accepted(track({ messageId: 'abc-123' })).messageId, 'abc-123');
    });

    test('a numeric messageId is kept as a string', () => {
      const e = accepted(track({ messageId: 42 }));
      assert.equal(e.messageId, '42');
      assert.equal(typeof e.messageId, 'string');
      assert.equal(accepted(track({ messageId: 1.5 })).messageId, '1.5');
    });

    test('is h- + 32 hex of a hash of the raw text when missing or empty', () => {
      const text = JSON.stringify(track());
      const a = accepted(text).messageId;
      assert.match(a, /^h-[0-9a-f]{32}$/);
      assert.equal(accepted(text).messageId, a, 'same raw, same id');
      assert.equal(accepted(text, { fallbackReceivedAtMs: 1, stampReceivedAt: true }).messageId, a, 'the id does not depend on the context');
      const b = accepted(JSON.stringify(track({ anonymousId: 'anon-2' }))).messageId;
      assert.match(b, /^h-[0-9a-f]{32}$/);
      assert.notEqual(b, a, 'different raw, different id');
      // Whitespace is part of the raw text.
      assert.notEqual(accepted(text + ' ').messageId, a);
      const empty = accepted(track({ messageId: '' })).messageId;
      assert.match(empty, /^h-[0-9a-f]{32}$/);
      assert.equal(accepted(track({ messageId: null })).messageId.startsWith('h-'), true);
    });
  });
});

describe('decodeRecord batch envelopes', () => {
  test('yields one outcome per member, in order, invalid members dead-lettered individually', () => {
    const members = [
      track({ messageId: 'b1', receivedAt: '2026-11-21T00:00:00Z' }),
      { type: 'bogus', anonymousId: 'x' },
      { type: 'screen', name: 'S', userId: 'u', messageId: 'b3' },
      'not an object',
      null,
      [1],
      { type: 'identify' },
      { type: 'group', userId: 'u', groupId: 'g', messageId: 'b8' },
    ];
    const out = decodeRecord(JSON.stringify({ batch: members }), CTX);
    assert.equal(out.length, members.length);
    const summary = out.map((o) => (isInvalid(o) ? `invalid:${o.reason}` : `ok:${o.messageId}`));
    assert.equal(summary[0], 'ok:b1');
    assert.match(summary[1]!, /^invalid:type "bogus" is not one of/);
    assert.equal(summary[2], 'ok:b3');
    assert.equal(summary[3], 'invalid:batch member is not a JSON object');
    assert.equal(summary[4], 'invalid:batch member is not a JSON object');
    assert.equal(summary[5], 'invalid:batch member is not a JSON object');
    assert.equal(summary[6], 'invalid:neither userId nor anonymousId is set');
    assert.equal(summary[7], 'ok:b8');
    assert.equal((out[3] as InvalidRecord).raw, '"not an object"');
    assert.equal((out[4] as InvalidRecord).raw, 'null');
    assert.equal((out[5] as InvalidRecord).raw, '[1]');
  });

  test('an empty batch is refused as a whole', () => {
    const text = JSON.stringify({ batch: [] });
    refused(text, /^batch envelope with an empty "batch" array$/);
  });

  test('raw of a member is the JSON of that member, not the whole line', () => {
    const m1 = track({ messageId: 'b1' });
    const m2 = { type: 'bogus', anonymousId: 'x' };
    const text = JSON.stringify({ batch: [m1, m2] });
    const out = decodeRecord(text, CTX);
    assert.equal(out[0]!.raw, JSON.stringify(m1));
    assert.equal(out[1]!.raw, JSON.stringify(m2));
    assert.notEqual(out[0]!.raw, text);
  });

  test('batch-level sentAt and context apply to members lacking them, and show in their raw', () => {
    const text = JSON.stringify({
      batch: [
        track({ messageId: 'no-own', originalTimestamp: '2026-03-01T11:00:00Z', receivedAt: '2026-03-01T10:00:07Z' }),
        track({ messageId: 'own', sentAt: '2026-03-01T12:00:00Z', context: { ip: '10.0.0.2' } }),
      ],
      sentAt: '2026-03-01T11:00:05Z',
      context: { ip: '10.0.0.1' },
    });
    const [a, b] = decodeRecord(text, CTX) as DecodedEvent[];
    assert.ok(a && !isInvalid(a) && b && !isInvalid(b));
    assert.equal(a.sentAtMs, Date.UTC(2026, 2, 1, 11, 0, 5));
    assert.equal(a.timestampMs, Date.UTC(2026, 2, 1, 10, 0, 2), 'the skew rule used the batch sentAt');
    assert.deepEqual(JSON.parse(a.raw).context, { ip: '10.0.0.1' });
    assert.equal(JSON.parse(a.raw).sentAt, '2026-03-01T11:00:05Z');
    assert.equal(b.sentAtMs, Date.UTC(2026, 2, 1, 12), 'a member keeps its own sentAt');
    assert.deepEqual(JSON.parse(b.raw).context, { ip: '10.0.0.2' }, 'a member keeps its own context');
  });

  test('an invalid batch-level sentAt refuses the members that inherit it', () => {
    const out = decodeRecord(JSON.stringify({ batch: [track({ messageId: 'a' }), track({ messageId: 'b', sentAt: '2026-01-01T00:00:00Z' })], sentAt: 'soon' }), CTX);
    assert.ok(isInvalid(out[0]!));
    assert.match((out[0] as InvalidRecord).reason, /^sentAt "soon" is not an ISO-8601 date$/);
    assert.ok(!isInvalid(out[1]!));
  });

  test('members without messageId get distinct hashed ids', () => {
    const out = decodeRecord(JSON.stringify({ batch: [track({ anonymousId: 'p' }), track({ anonymousId: 'q' })] }), CTX) as DecodedEvent[];
    assert.match(out[0]!.messageId, /^h-[0-9a-f]{32}$/);
    assert.match(out[1]!.messageId, /^h-[0-9a-f]{32}$/);
    assert.notEqual(out[0]!.messageId, out[1]!.messageId);
    // The id of a member is the id of the same member sent as a plain line.
    assert.equal(out[0]!.messageId, accepted(JSON.stringify(track({ anonymousId: 'p' }))).messageId);
  });

  test('an object with a batch array and a type is an event, not an envelope', () => {
    const e = accepted({ type: 'track', event: 'E', anonymousId: 'a', batch: [1, 2, 3] });
    assert.equal(e.event, 'E');
  });

  test('batch that is not an array is an ordinary (here invalid) event', () => {
    refused({ batch: {} }, /^type missing is not one of/);
  });
});
