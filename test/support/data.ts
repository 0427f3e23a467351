import { gzipSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
import { sampleLines } from '../../src/sample/generate.ts';

/** Event names that try to break out of a partition directory or a SQL string. */
export const HOSTILE_NAMES = [
  '../../etc/passwd',
  'a/b split',
  'Café ☕',
  'SELECT * FROM t; --',
  'x'.repeat(120),
  'it\'s "quoted" = %41 \\ back',
  '.hidden',
  '_underscore',
  'tab\there',
  '  spaced  ',
];

/** Hand-written lines covering the edges the generator does not. */
export function edgeLines(): string[] {
  return [
    '',
    '   ',
    JSON.stringify({ type: 'track', event: 'No Message Id', anonymousId: 'edge-1', receivedAt: '2026-11-21T10:00:00Z', properties: { revenue: 1 } }),
    JSON.stringify({ type: 'track', event: 'No Received At', anonymousId: 'edge-2', timestamp: '2026-11-21T11:00:00.123+02:00' }) + '\r',
    JSON.stringify({ type: 'identify', userId: 12345, traits: { n: 1 }, receivedAt: '2026-11-22T00:00:00.000Z', messageId: 'edge-num-user' }),
    JSON.stringify({ type: 'page', anonymousId: 'edge-3', name: 'Ünïcödé 页面', receivedAt: '2026-11-20T23:59:59.999Z', messageId: 'edge-unicode' }),
    JSON.stringify({ batch: [
      { type: 'track', event: 'Batched', anonymousId: 'edge-4', receivedAt: '2026-11-21T00:00:00Z', messageId: 'edge-b1' },
      { type: 'bogus', anonymousId: 'edge-4' },
      { type: 'screen', name: 'S', userId: 'edge-5', receivedAt: '2026-11-21T00:00:00Z', messageId: 'edge-b3' },
    ], sentAt: '2026-11-21T00:00:01Z' }),
    JSON.stringify({ batch: [] }),
    JSON.stringify({ type: 'track', event: 'Bad Date', anonymousId: 'edge-6', receivedAt: '2026-02-30T00:00:00Z' }),
    JSON.stringify({ type: 'track', event: { nested: true }, anonymousId: 'edge-7', receivedAt: '2026-11-21T00:00:00Z' }),
    'null',
    '"just a string"',
    JSON.stringify({ type: 'alias', userId: 'edge-8', previousId: 'edge-9', receivedAt: '2026-11-22T05:00:00Z', messageId: 'edge-alias' }),
  ];
}

/** Writes the standard test input: a plain file and a gzipped one. Returns their paths and all lines. */
export function writeTestInput(dir: string, count: number, seed = 1): { files: string[]; lines: string[] } {
  const a = [...sampleLines({ count, seed, invalidRate: 0.02, batchRate: 0.03, extraEventNames: HOSTILE_NAMES }), ...edgeLines()];
  const b = [...sampleLines({ count: Math.floor(count / 2), seed: seed + 1000, invalidRate: 0.02, extraEventNames: HOSTILE_NAMES })];
  const fa = `${dir}/events.ndjson`;
  const fb = `${dir}/more.ndjson.gz`;
  writeFileSync(fa, a.join('\n') + '\n');
  writeFileSync(fb, gzipSync(b.join('\n'))); // no final newline: the last line still counts
  return { files: [fa, fb], lines: [...a, ...b] };
}

/** Writes events (and returns the files written) in Segment's S3 destination layout: segment-logs/<source-id>/<received-day-epoch-ms>/<file>.gz */
export function segmentLayout(root: string, lines: string[], filesPerDay = 4): string[] {
  const written: string[] = [];
  const byDay = new Map<number, string[]>();
  for (const line of lines) {
    let day = Date.UTC(2026, 10, 20);
    try {
      const r = JSON.parse(line).receivedAt;
      if (typeof r === 'string' && !Number.isNaN(Date.parse(r))) day = Math.floor(Date.parse(r) / 86_400_000) * 86_400_000;
    } catch {
      // invalid lines go to the first day's files
    }
    byDay.set(day, [...(byDay.get(day) ?? []), line]);
  }
  for (const [day, ls] of byDay) {
    const dir = `${root}/segment-logs/src-AbC123/${day}`;
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < filesPerDay; f++) {
      const part = ls.filter((_, i) => i % filesPerDay === f);
      const file = `${dir}/${1700000000000 + f}.${f}a2b3c.gz`;
      writeFileSync(file, gzipSync(part.join('\n') + '\n'));
      written.push(file);
    }
  }
  return written;
}
