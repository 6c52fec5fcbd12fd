// koffi for CommonJS code: the package ships ESM typings (index.d.ts in a "type": "module"
// package) beside its CommonJS entry (index.cjs) with the same API, so the types are imported
// in import mode and the value comes from require().
import type * as Koffi from 'koffi' with { 'resolution-mode': 'import' };

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const koffi: typeof Koffi = require('koffi') as typeof Koffi;
export type { Koffi };
