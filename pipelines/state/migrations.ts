// The state database's schema, as numbered migrations applied in order, each in its own
// transaction with its row in schema_migrations. Workers that start at once take an advisory
// lock first, so one applies them and the others find them done. A database newer than this
// program is refused rather than written to.
import type pg from 'pg';
import { EtlError } from '../../lib/errors.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'state: watermarks, rate budgets, tokens, runs',
    sql: `
      CREATE TABLE watermarks (
        pipeline   text NOT NULL,
        user_key   text NOT NULL,
        stream     text NOT NULL,
        value      text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (pipeline, user_key, stream)
      );
      -- One row per user and provider, taken under FOR UPDATE by every request of every worker.
      CREATE TABLE rate_budgets (
        provider   text NOT NULL,
        user_key   text NOT NULL,
        budget_limit integer NOT NULL,
        remaining  integer NOT NULL,
        reset_at   bigint NOT NULL,
        -- Epoch ms before which no request may go: a taker that had to wait holds the next
        -- window's start here, so the takers after it line up behind it.
        not_before bigint NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, user_key)
      );
      -- Secrets, apart from everything else: encrypted when WEARABLE_ETL_TOKEN_KEY is set.
      CREATE TABLE tokens (
        provider      text NOT NULL,
        user_key      text NOT NULL,
        access_token  text NOT NULL,
        refresh_token text NOT NULL,
        encrypted     boolean NOT NULL,
        -- SHA-256 of the pair last read from the users file: a changed file pair is a re-consent.
        seed_hash     text NOT NULL,
        rotations     integer NOT NULL DEFAULT 0,
        updated_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, user_key)
      );
      CREATE TABLE runs (
        run_id      text PRIMARY KEY,
        worker      text NOT NULL,
        started_at  timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        exit_code   integer,
        summary     jsonb
      );
    `,
  },
  {
    version: 2,
    name: 'workers: rounds of work and user leases',
    sql: `
      CREATE TABLE rounds (
        id        bigserial PRIMARY KEY,
        work_key  text NOT NULL,
        opened_at timestamptz NOT NULL DEFAULT now(),
        closed_at timestamptz
      );
      CREATE UNIQUE INDEX rounds_one_open ON rounds (work_key) WHERE closed_at IS NULL;
      CREATE TABLE leases (
        round_id   bigint NOT NULL REFERENCES rounds (id) ON DELETE CASCADE,
        user_key   text NOT NULL,
        holder     text,
        expires_at timestamptz,
        claims     integer NOT NULL DEFAULT 0,
        done_at    timestamptz,
        failure    text,
        PRIMARY KEY (round_id, user_key)
      );
      CREATE INDEX leases_open ON leases (round_id, user_key) WHERE done_at IS NULL;
    `,
  },
  {
    version: 3,
    name: 'Google Health budgets: a sliding window of tickets per user',
    sql: `
      -- One row per request of the window: Google sends no rate-limit headers, so the budget is
      -- the user's last requests, counted by every worker. Taken and settled under the user's
      -- rate_budgets row (FOR UPDATE), whose not_before holds a 429's pause (its other
      -- columns stay as created: they are the Fitbit budget's).
      CREATE TABLE rate_tickets (
        id           bigserial PRIMARY KEY,
        provider     text NOT NULL,
        user_key     text NOT NULL,
        -- Epoch ms the request counts from: when its answer came, once settled. While it is in
        -- flight, the latest instant it could still be answered (a worker that died with it
        -- leaves it counted until then, then as answered then).
        counted_from bigint NOT NULL,
        settled      boolean NOT NULL DEFAULT false
      );
      CREATE INDEX rate_tickets_user ON rate_tickets (provider, user_key, counted_from);
    `,
  },
];

/** Any constant: the advisory lock that serializes migrations across workers. */
const MIGRATION_LOCK = 0x77_65_74_6c; // "wetl"

/** Applies the migrations not applied yet (up to `target`); returns the versions applied. */
export async function migrate(pool: pg.Pool, migrations: readonly Migration[] = MIGRATIONS, target = Infinity): Promise<number[]> {
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
      const known = Math.max(0, ...migrations.map((m) => m.version));
      const newest = Math.max(0, ...done);
      if (newest > known) {
        throw new EtlError('STATE', `the state database is at schema version ${newest}, newer than this wearable-etl knows (${known}); upgrade wearable-etl`);
      }
      for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
        if (done.has(m.version) || m.version > target) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw new EtlError('STATE', `state database migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, {}, { cause: err });
        }
        applied.push(m.version);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
  return applied;
}
