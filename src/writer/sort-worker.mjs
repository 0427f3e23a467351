// Bootstrap for the spool sort worker: worker threads do not inherit the TypeScript loader.
import { register } from 'tsx/esm/api';

register();
await import('./sort-worker.ts');
