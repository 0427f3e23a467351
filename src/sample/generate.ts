/**
 * Deterministic sample Segment events for the demo, tests and benchmarks: an A/B test
 * ("Experiment Viewed" / "Experiment Clicked"), orders with revenue, pages, identifies, groups,
 * screens and aliases, plus (optionally) invalid lines of every kind the validator refuses.
 */

/** A small seeded PRNG (mulberry32), so the same seed gives the same events everywhere. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SampleOptions {
  /** Number of lines to produce. */
  count: number;
  seed?: number;
  /** First receivedAt, epoch ms. Default 2026-11-20T00:00:00Z. */
  startMs?: number;
  /** Time span the events cover, ms. Default 3 days. */
  spanMs?: number;
  /** Fraction of lines that are invalid. Default 0. */
  invalidRate?: number;
  /** Pad properties so an average event is about this many bytes (0: no padding). */
  padToBytes?: number;
  /** Extra event names to mix into tracks (hostile names for escaping tests). */
  extraEventNames?: string[];
  /** Fraction of lines that are Segment batch envelopes of 2–5 events. Default 0. */
  batchRate?: number;
  /**
   * receivedAt order. 'random' (default): uniform over the span, in no order (the worst case for the
   * writer, which must sort). 'arrival': non-decreasing along the lines, as a stream delivers them
   * (receivedAt is stamped on arrival).
   */
  order?: 'random' | 'arrival';
}

const EXPERIMENTS = [
  { name: 'Homepage Hero', variations: ['Control', 'Big Button', 'Video'] },
  { name: 'Pricing Page "Annual" Toggle', variations: ['Control', 'Default Annual'] },
  { name: 'Checkout Flow ☕', variations: ['Control', 'One Page'] },
];

const INVALID_LINES: Array<(r: () => number, i: number) => string> = [
  (_r, i) => `{"type":"track","event":"Broken ${i}", "userId": `, // malformed JSON
  () => `[1,2,3]`, // not an object
  (_r, i) => JSON.stringify({ type: 'purchase', userId: `u${i}`, event: 'X' }), // unknown type
  (_r, i) => JSON.stringify({ type: 'track', event: 'No Ids', messageId: `bad-noid-${i}` }), // no ids
  (_r, i) => JSON.stringify({ type: 'track', anonymousId: `a${i}`, event: '' }), // empty event
  (_r, i) => JSON.stringify({ type: 'group', userId: `u${i}`, traits: {} }), // group without groupId
  (_r, i) => JSON.stringify({ type: 'page', userId: `u${i}`, timestamp: 'yesterday' }), // bad date
  (_r, i) => JSON.stringify({ type: 'track', userId: `u${i}`, event: 'Huge', properties: { blob: 'x'.repeat(33 * 1024) } }), // > 32 KB
];

/** Produces `count` NDJSON lines (without newlines). */
export function* sampleLines(o: SampleOptions): Generator<string> {
  const r = rng(o.seed ?? 42);
  const start = o.startMs ?? Date.UTC(2026, 10, 20);
  const span = o.spanMs ?? 3 * 86_400_000;
  const users = Math.max(10, Math.floor(o.count / 20));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const padLen = o.padToBytes && o.padToBytes > 600 ? o.padToBytes - 600 : 0;
  // Padding of pseudo-random words: compresses like real text, unlike a repeated character.
  const WORDS = ['alpha', 'checkout', 'pricing', 'mobile', 'campaign', 'summer', 'banner', 'cart', 'search', 'filter', 'premium', 'trial', 'invoice', 'upgrade', 'widget', 'sidebar', 'footer', 'modal', 'signup', 'onboarding'];
  const padText = (): string => {
    let t = '';
    while (t.length < padLen) t += WORDS[Math.floor(r() * WORDS.length)]! + (r() < 0.2 ? Math.floor(r() * 1000) : '') + ' ';
    return t.slice(0, padLen);
  };
  for (let i = 0; i < o.count; i++) {
    if (o.invalidRate && r() < o.invalidRate) {
      yield pick(INVALID_LINES)(r, i);
      continue;
    }
    const makeEvent = (j: number): Record<string, unknown> => {
      const u = Math.floor(r() * users);
      const anon = `anon-${u.toString(36)}`;
      const userId = r() < 0.6 ? `user-${u}` : undefined;
      const at = r();
      const receivedAt = new Date(start + Math.floor(o.order === 'arrival' ? (i / o.count) * span : at * span)).toISOString();
      const base: Record<string, unknown> = {
        messageId: `msg-${o.seed ?? 42}-${i}-${j}`,
        anonymousId: anon,
        ...(userId ? { userId } : {}),
        receivedAt,
        timestamp: receivedAt,
        sentAt: receivedAt,
        context: {
          ip: `10.${u % 256}.${(u >> 8) % 256}.${i % 256}`,
          userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36',
          page: { url: `https://example.com/p/${u % 50}`, referrer: 'https://www.google.com/' },
          library: { name: 'analytics.js', version: '2.11.1' },
          locale: pick(['en-US', 'de-DE', 'fr-FR']),
        },
      };
      const k = r();
      if (k < 0.45) {
        const ex = pick(EXPERIMENTS);
        const clicked = r() < 0.3;
        return { ...base, type: 'track', event: clicked ? 'Experiment Clicked' : 'Experiment Viewed', properties: { experimentName: ex.name, variationName: pick(ex.variations), ...(padLen ? { pad: padText() } : {}) } };
      }
      if (k < 0.6) {
        return { ...base, type: 'track', event: 'Order Completed', properties: { orderId: `o-${i}`, revenue: Math.round(r() * 50000) / 100, currency: 'USD', ...(padLen ? { pad: padText() } : {}) } };
      }
      if (k < 0.68 && o.extraEventNames && o.extraEventNames.length > 0) {
        return { ...base, type: 'track', event: pick(o.extraEventNames), properties: { n: i, ...(padLen ? { pad: padText() } : {}) } };
      }
      if (k < 0.85) return { ...base, type: 'page', name: pick(['Home', 'Pricing', 'Docs', 'Blog']), properties: { path: `/p/${u % 50}`, ...(padLen ? { pad: padText() } : {}) } };
      if (k < 0.92) return { ...base, type: 'identify', traits: { email: `user${u}@example.com`, plan: pick(['free', 'pro', 'enterprise']) } };
      if (k < 0.96) return { ...base, type: 'group', groupId: `g-${u % 40}`, traits: { name: `Company ${u % 40}` } };
      if (k < 0.99) return { ...base, type: 'screen', name: pick(['Feed', 'Settings']), properties: {} };
      return { ...base, type: 'alias', userId: `user-${u}`, previousId: anon };
    };
    if (o.batchRate && r() < o.batchRate) {
      const n = 2 + Math.floor(r() * 4);
      yield JSON.stringify({ batch: Array.from({ length: n }, (_, j) => makeEvent(j)), sentAt: new Date(start).toISOString() });
    } else {
      yield JSON.stringify(makeEvent(0));
    }
  }
}
