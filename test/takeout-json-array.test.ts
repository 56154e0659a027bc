// The chunked JSON array reader (sources/takeout/json-array.ts): the elements equal what
// JSON.parse makes of the whole text, whichever byte the chunks are cut at (inside strings,
// escapes, multi-byte characters, numbers, between elements); faults are named, with the
// elements before them handed on; int64 ids kept exact.
import test from 'ava';
import { JsonArrayError, jsonArrayBatches, type JsonArrayOptions } from '../sources/takeout/json-array.js';

async function* chunked(bytes: Buffer, cuts: readonly number[]): AsyncGenerator<Buffer> {
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    yield bytes.subarray(at, cut);
    at = cut;
  }
}

async function read(text: string | Buffer, cuts: readonly number[] = [], options: JsonArrayOptions = {}): Promise<{ values: unknown[]; batches: number; error: JsonArrayError | null }> {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const values: unknown[] = [];
  let batches = 0;
  try {
    for await (const batch of jsonArrayBatches(chunked(bytes, cuts), options)) {
      values.push(...batch);
      batches++;
    }
  } catch (err) {
    if (!(err instanceof JsonArrayError)) throw err;
    return { values, batches, error: err };
  }
  return { values, batches, error: null };
}

// Strings with escaped quotes and backslashes (an even and an odd run before a quote), a
// multi-byte character, nested arrays and objects with commas inside, numbers, literals.
const TRICKY = `\uFEFF [ {"dateTime" : "04/12/16 07:00:00", "value" : "0"},
  {"a\\\\": "x\\"y,]}", "b": [1, 2, {"c": "é€𝄞"}], "d": -1.5e3},
  "a string, with [brackets]", 12345, true, null, [], {},
  {"value": {"bpm": 61, "confidence": 2}}, "\\\\\\"" ] \n`;

test('every single cut and many double cuts give the elements JSON.parse gives the whole text', async (t) => {
  const expected = JSON.parse(TRICKY.replace(/^\uFEFF/, '')) as unknown[];
  const n = Buffer.byteLength(TRICKY);
  t.is(expected.length, 10);
  for (let cut = 0; cut <= n; cut++) {
    const r = await read(TRICKY, [cut], { cutChars: 1 });
    t.is(r.error, null, `cut at ${cut}`);
    t.deepEqual(r.values, expected, `cut at ${cut}`);
  }
  for (let a = 0; a <= n; a += 3) {
    for (let b = a; b <= n; b += 7) {
      const r = await read(TRICKY, [a, b], { cutChars: 5 });
      t.deepEqual(r.values, expected, `cuts at ${a}, ${b}`);
    }
  }
  // One byte a chunk.
  const bytewise = await read(TRICKY, Array.from({ length: n }, (_, i) => i), { cutChars: 1 });
  t.deepEqual(bytewise.values, expected);
});

test('a long array is parsed a piece at a time and nothing is lost between pieces', async (t) => {
  const rows = Array.from({ length: 20_000 }, (_, i) => ({ dateTime: `04/12/16 ${String(i % 24).padStart(2, '0')}:00:00`, value: String(i) }));
  const text = JSON.stringify(rows, null, 1);
  const bytes = Buffer.from(text);
  const cuts = [];
  for (let at = 1000; at < bytes.length; at += 16_381) cuts.push(at);
  const r = await read(bytes, cuts, { cutChars: 64 * 1024 });
  t.is(r.error, null);
  t.deepEqual(r.values, rows);
  t.true(r.batches > 5, `${r.batches} batches`);
});

test('empty arrays and blank text', async (t) => {
  t.deepEqual((await read('[]')).values, []);
  t.deepEqual((await read(' [ \n ] ', [2, 3])).values, []);
  t.regex((await read('   ')).error?.message ?? '', /no JSON array/);
});

test('faults are named, and the elements before them are handed on', async (t) => {
  const cases: { text: string; before: number; message: RegExp }[] = [
    { text: '{"a": 1}', before: 0, message: /not a JSON array: it starts with "\{/ },
    { text: 'no data here', before: 0, message: /not a JSON array/ },
    { text: '[1, 2, 3', before: 2, message: /ends before its closing \]/ },
    { text: '[{"a": 1}, {"b": "unterminated', before: 1, message: /ends before its closing \]/ },
    { text: '[1, 2, oops, 4]', before: 2, message: /element 2 is not JSON/ },
    { text: '[1, , 3]', before: 1, message: /element 1 .*empty|comma too many/ },
    { text: '[1, 2,]', before: 2, message: /element 2 is (empty|not JSON)/ },
    { text: '[,1]', before: 0, message: /element 0 is (empty|not JSON)/ },
    { text: '[1, 2] [3]', before: 2, message: /text after the closing \]/ },
    { text: '[{"a": [1}, 2]', before: 0, message: /not JSON|ends before/ },
  ];
  for (const c of cases) {
    for (const cutChars of [1, 1 << 20]) {
      const r = await read(c.text, [], { cutChars });
      t.truthy(r.error, `${c.text} (cut ${cutChars})`);
      t.regex(r.error?.message ?? '', c.message, `${c.text} (cut ${cutChars})`);
      t.is(r.values.length, c.before, `${c.text} (cut ${cutChars})`);
    }
  }
});

test('an element longer than the cap is refused without being held whole', async (t) => {
  const big = `[1, "${'x'.repeat(5000)}", 3]`;
  const r = await read(big, [10, 2000, 4000], { cutChars: 1, maxElementChars: 1000 });
  t.deepEqual(r.values, [1]);
  t.regex(r.error?.message ?? '', /element 1 is longer than 1000 characters/);
});

test('exactNumberKeys keeps int64 ids exact, and only as keys', async (t) => {
  const text = `[{"logId": 12345678901234567890, "x": 1, "note": "\\"logId\\": 5"},
    {"logId" : -42, "duration": 1.5e3}, {"other": {"logId": 9007199254740993}}, {"logIdx": 3, "k": "logId"}]`;
  for (const cuts of [[], [5], [14], [22], [70]]) {
    const r = await read(text, cuts, { exactNumberKeys: ['logId'], cutChars: 1 });
    t.is(r.error, null);
    t.deepEqual(r.values, [
      { logId: '12345678901234567890', x: 1, note: '"logId": 5' },
      { logId: '-42', duration: 1500 },
      { other: { logId: '9007199254740993' } },
      { logIdx: 3, k: 'logId' },
    ]);
  }
});
