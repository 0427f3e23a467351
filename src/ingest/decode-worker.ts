import { parentPort, workerData } from 'node:worker_threads';
import { Encoder, type EncoderConfig, type EncoderInput } from './encoder.ts';

/** Worker thread body: encodes inputs posted by DecodePool, in order, transferring the buffers back. */
const encoder = new Encoder(workerData as EncoderConfig);
parentPort!.on('message', (msg: { id: number; input: EncoderInput }) => {
  try {
    const out = encoder.encode(msg.input);
    const transfer = out.groups.flatMap((g) => [g.bytes.buffer, g.record.buffer, g.sub.buffer, g.offsets.buffer, g.receivedAt.buffer, g.eventOf.buffer]) as ArrayBuffer[];
    parentPort!.postMessage({ id: msg.id, out }, [...new Set(transfer)]);
  } catch (err) {
    parentPort!.postMessage({ id: msg.id, error: (err as Error).stack ?? String(err) });
  }
});
