import { parentPort, workerData } from 'node:worker_threads';
import { Encoder, type EncoderConfig, type EncoderInput } from './encoder.ts';

/**
 * Worker thread body: encodes inputs posted by DecodePool, in order. The output buffer and the
 * input's bytes go back by transfer; buffers the pool hands back (`reuse`) are kept for later outputs.
 */
const encoder = new Encoder(workerData as EncoderConfig);
parentPort!.on('message', (msg: { id: number; input: EncoderInput; reuse: ArrayBuffer[] }) => {
  encoder.recycle(msg.reuse);
  try {
    const out = encoder.encode(msg.input);
    const transfer: ArrayBuffer[] = [];
    if (out.buffer !== null) transfer.push(out.buffer);
    if (msg.input.kind === 'ndjson') transfer.push(msg.input.bytes.buffer as ArrayBuffer);
    parentPort!.postMessage({ id: msg.id, out, input: msg.input.kind === 'ndjson' ? msg.input.bytes : undefined }, transfer);
  } catch (err) {
    parentPort!.postMessage({ id: msg.id, error: (err as Error).stack ?? String(err) });
  }
});
