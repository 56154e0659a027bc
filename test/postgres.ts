// A throwaway PostgreSQL for one test file: initdb + pg_ctl from the distribution's packages in
// a temporary folder, on a free loopback port, with its socket in that folder (nothing in
// /var/run/postgresql is needed), stopped and removed afterwards. PostgreSQL refuses to run as
// root, so as root the server runs as the `postgres` user the Debian package creates (else
// `nobody`) through runuser, and the folder belongs to that user. A watchdog stops the server
// if the test process dies without stopping it. `.ci/run` installs the package when missing.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface TestPostgres {
  /** postgres://etl@127.0.0.1:<port>/postgres (trust authentication, loopback only) */
  url: string;
  /** A fresh database on the server, for a test that wants its own schema. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

/** The folder holding initdb and pg_ctl: PG_BINDIR, pg_config --bindir, /usr/lib/postgresql/<newest>/bin, PATH. */
export async function findPgBin(): Promise<string> {
  const candidates: string[] = [];
  if (process.env.PG_BINDIR) candidates.push(process.env.PG_BINDIR);
  try {
    candidates.push((await run('pg_config', ['--bindir'])).stdout.trim());
  } catch {
    // pg_config comes with libpq-dev; the server packages do not need it.
  }
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(join(debian, v, 'bin'));
  }
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir) candidates.push(dir);
  const found = candidates.find((dir) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')));
  if (!found) throw new Error('PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql, or set PG_BINDIR');
  return found;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function idOf(user: string, flag: '-u' | '-g'): Promise<number | null> {
  try {
    return Number((await run('id', [flag, user])).stdout.trim());
  } catch {
    return null;
  }
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = await findPgBin();
  // As root, under /tmp: the server's user must be able to reach the folder (a TMPDIR under
  // /root would not let it).
  const root = process.getuid?.() === 0;
  const dir = await mkdtemp(join(root ? '/tmp' : tmpdir(), 'pg-test-'));
  const data = join(dir, 'data');
  let asUser: string[] = [];
  if (root) {
    const user = (await idOf('postgres', '-u')) !== null ? 'postgres' : 'nobody';
    await chown(dir, (await idOf(user, '-u'))!, (await idOf(user, '-g'))!);
    asUser = ['runuser', '-u', user, '--'];
  }
  const exec = async (cmd: string, args: string[]): Promise<void> => {
    const argv = [...asUser, join(bin, cmd), ...args];
    try {
      await run(argv[0]!, argv.slice(1), { cwd: dir });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${cmd} failed: ${e.stderr?.trim() || e.message}`);
    }
  };
  await exec('initdb', ['-D', data, '-A', 'trust', '-U', 'etl', '--no-sync', '--no-locale', '-E', 'UTF8']);
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await exec('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', '-o', `-p ${port} -h 127.0.0.1 -k ${dir} -F -c max_connections=60 -c full_page_writes=off`, 'start']);
      break;
    } catch (err) {
      if (attempt >= 2) throw err; // the port was taken between freePort and the start
    }
  }
  // Stops the server if this process dies first (a crashed or killed test run).
  const stopCmd = [...asUser, join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop'].map((a) => `'${a}'`).join(' ');
  const watchdog = spawn('/bin/sh', ['-c', `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ${stopCmd} >/dev/null 2>&1; rm -rf '${dir}'`], { detached: true, stdio: 'ignore' });
  watchdog.unref();

  const url = `postgres://etl@127.0.0.1:${port}/postgres`;
  let databases = 0;
  return {
    url,
    async createDatabase(name: string) {
      const db = `${name.replace(/[^a-z0-9_]/g, '_')}_${++databases}`;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${db}`);
      } finally {
        await client.end();
      }
      return `postgres://etl@127.0.0.1:${port}/${db}`;
    },
    async stop() {
      try {
        await exec('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      } finally {
        watchdog.kill();
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}
