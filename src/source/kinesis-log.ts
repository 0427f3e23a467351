import { PutRecordsCommand, type KinesisClient, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import { randomUUID } from 'node:crypto';
import { isRetriableKinesisError } from '../aws/kinesis-client.ts';
import { describeSdkError } from '../aws/sdk-errors.ts';
import { SourceError, badOption } from '../errors.ts';
import type { EventLog } from './local-log.ts';

/** Kinesis PutRecords limits: entries per call, bytes per call (data + partition keys), bytes per record. */
const MAX_ENTRIES = 500;
const MAX_CALL_BYTES = 5 * 1024 * 1024;
const MAX_RECORD_BYTES = 1024 * 1024;

/** Options of a Kinesis-backed event log. */
export interface KinesisLogOptions {
  stream: string;
  client: KinesisClient;
  /** Attempts for entries PutRecords reports failed (throttled) before the append fails. Default 8 (backoff 50 ms doubling to 5 s). */
  maxAttempts?: number;
}

/**
 * An EventLog that puts records to a Kinesis stream (PutRecords in calls of at most 500 entries and
 * 5 MB), retrying only the entries a response reports failed: an append resolves once Kinesis has
 * accepted every record, so a collector answering 200 after it has made the events durable.
 * Records are spread over shards by random partition keys (events carry no ordering contract).
 */
export class KinesisLog implements EventLog {
  private readonly stream: string;
  private readonly client: KinesisClient;
  private readonly maxAttempts: number;
  private inFlight = new Set<Promise<void>>();
  private closed = false;

  constructor(o: KinesisLogOptions) {
    if (!/^[a-zA-Z0-9_.-]{1,128}$/.test(o.stream)) badOption('stream', o.stream, 'a Kinesis stream name');
    this.stream = o.stream;
    this.client = o.client;
    this.maxAttempts = o.maxAttempts ?? 8;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1 || this.maxAttempts > 100) badOption('maxAttempts', o.maxAttempts, 'an integer from 1 to 100');
  }

  append(records: string[]): Promise<void> {
    if (this.closed) return Promise.reject(new SourceError('the Kinesis log is closed'));
    const p = this.put(records);
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
  }

  private async put(records: string[]): Promise<void> {
    let call: PutRecordsRequestEntry[] = [];
    let bytes = 0;
    const calls: PutRecordsRequestEntry[][] = [];
    for (const text of records) {
      const data = Buffer.from(text, 'utf8');
      const key = randomUUID();
      const size = data.length + key.length;
      if (data.length > MAX_RECORD_BYTES - key.length) throw new SourceError(`an event of ${data.length} bytes is over Kinesis' 1 MiB record limit`);
      if (call.length === MAX_ENTRIES || bytes + size > MAX_CALL_BYTES) {
        calls.push(call);
        call = [];
        bytes = 0;
      }
      call.push({ Data: data, PartitionKey: key });
      bytes += size;
    }
    if (call.length > 0) calls.push(call);
    await Promise.all(calls.map((c) => this.putCall(c)));
  }

  private async putCall(entries: PutRecordsRequestEntry[]): Promise<void> {
    let todo = entries;
    let delay = 50;
    for (let attempt = 1; ; attempt++) {
      let failed: PutRecordsRequestEntry[];
      let why = '';
      try {
        const res = await this.client.send(new PutRecordsCommand({ StreamName: this.stream, Records: todo }));
        failed = todo.filter((_, i) => res.Records?.[i]?.ErrorCode !== undefined || res.Records?.[i]?.SequenceNumber === undefined);
        const first = res.Records?.find((r) => r.ErrorCode !== undefined);
        if (first) why = `${first.ErrorCode}: ${first.ErrorMessage}`;
      } catch (err) {
        if (!isRetriableKinesisError(err)) throw new SourceError(`Kinesis PutRecords to ${this.stream} failed: ${(err as Error).message}`, { cause: err });
        failed = todo;
        why = describeSdkError(err).name ?? (err as Error).message;
      }
      if (failed.length === 0) return;
      if (attempt >= this.maxAttempts) throw new SourceError(`Kinesis PutRecords to ${this.stream}: ${failed.length} records still refused after ${attempt} attempts (${why})`, { retriable: true });
      todo = failed;
      await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
      delay = Math.min(delay * 2, 5_000);
    }
  }
}
