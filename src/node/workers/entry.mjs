// A media worker thread's entry point. Worker threads do not inherit the main thread's loader
// hooks on Node 20, so this registers tsx (as bin/returncam does) before loading the TypeScript.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register({ tsconfig: fileURLToPath(new URL('../../../tsconfig.json', import.meta.url)) });
await import('./mediaWorker.ts');
