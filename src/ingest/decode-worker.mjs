// Bootstrap for the decode worker: worker threads do not inherit the TypeScript loader.
import { register } from 'tsx/esm/api';

register();
await import('./decode-worker.ts');
