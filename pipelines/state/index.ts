// Where a run keeps its state: files (default) or PostgreSQL, and the workers' leases.
export { resolveStateTarget, redactStateUrl } from './url.js';
export type { StateTarget } from './url.js';
export { TokenCipher, tokenCipherFromEnv, TOKEN_KEY_VARIABLE } from './cipher.js';
export { MIGRATIONS, migrate } from './migrations.js';
export type { Migration } from './migrations.js';
export { PgState, TICKET_FLIGHT_MS } from './pg.js';
export type { PgStateOptions, SeedResult, TicketOptions, TokenPair } from './pg.js';
export { UserLeases, workLeased } from './leases.js';
export type { LeaseOptions, LeasedWorkOptions, RoundProgress } from './leases.js';
export { fileStateStore, pgStateStore } from './store.js';
export type { StateStore } from './store.js';
