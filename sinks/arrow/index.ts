export { encodeArrow, arrowSchema } from './encoder.js';
export type { ArrowEncodeOptions } from './encoder.js';
export { readArrowRows } from './reader.js';
