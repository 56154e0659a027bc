// DuckDB as the tests' independent reader: one in-memory connection per test process, with
// timestamps printed in UTC; rows come back JSON-friendly (numbers, strings, null).
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

let connection: Promise<DuckDBConnection> | null = null;

export async function query(sql: string): Promise<Record<string, unknown>[]> {
  connection ??= (async () => {
    const con = await (await DuckDBInstance.create(':memory:')).connect();
    await con.run("SET TimeZone='UTC'");
    return con;
  })();
  return (await (await connection).runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
}
