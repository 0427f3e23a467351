/**
 * Baseline of the ingest benchmark: the same decode and rows, written with parquetjs-lite (pure
 * JavaScript Parquet), one file per table. Prints its figures as JSON.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { decodeRecord, isInvalid } from '../src/events/decode.ts';
import { columnsFor, DEFAULT_TABLE_OF, EVENT_TYPES, type EventType } from '../src/events/schema.ts';

const require = createRequire(import.meta.url);
const parquet = require('parquetjs-lite');
const [input, outDir, limit] = process.argv.slice(2) as [string, string, string];
const writers = new Map<EventType, { appendRow(r: object): Promise<void>; close(): Promise<void> }>();
for (const type of EVENT_TYPES) {
  const fields: Record<string, object> = {};
  for (const c of columnsFor(type)) fields[c.name] = { type: c.duckType === 'TIMESTAMP_MS' ? 'TIMESTAMP_MILLIS' : 'UTF8', optional: true, compression: 'SNAPPY' };
  writers.set(type, await parquet.ParquetWriter.openFile(new parquet.ParquetSchema(fields), `${outDir}/${DEFAULT_TABLE_OF[type]}.parquet`));
}
const str = (v: unknown) => (v === undefined || v === null ? null : typeof v === 'string' ? v : JSON.stringify(v));
const t0 = process.hrtime.bigint();
let n = 0;
for await (const line of createInterface({ input: createReadStream(input), crlfDelay: Infinity })) {
  if (n >= Number(limit)) break;
  for (const o of decodeRecord(line, { fallbackReceivedAtMs: 0 })) {
    if (isInvalid(o)) continue;
    const e = JSON.parse(o.raw) as Record<string, any>;
    const c = (e.context ?? {}) as Record<string, any>;
    const ts = (ms: number | null) => (ms === null ? null : new Date(ms));
    await writers.get(o.type)!.appendRow({
      message_id: o.messageId, type: o.type, event: str(e.event), name: str(e.name), group_id: str(e.groupId), previous_id: str(e.previousId),
      anonymous_id: str(e.anonymousId), user_id: str(e.userId), timestamp: ts(o.timestampMs), original_timestamp: ts(o.originalTimestampMs),
      sent_at: ts(o.sentAtMs), received_at: ts(o.receivedAtMs), context_ip: str(c.ip), context_user_agent: str(c.userAgent),
      context_page_url: str(c.page?.url), context_page_referrer: str(c.page?.referrer), context_library_name: str(c.library?.name),
      context_library_version: str(c.library?.version), context_locale: str(c.locale), properties: str(e.properties), traits: str(e.traits), context: str(e.context),
    });
    n++;
  }
}
for (const w of writers.values()) await w.close();
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
process.stdout.write(JSON.stringify({ events: n, seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024 }) + '\n');
