// The fast Parquet engine: a pure function from column buffers to the bytes of a whole file.
// No per-row objects: numbers go from typed arrays to PLAIN pages, near-constant strings
// (humanId, userId, source, type, tzOffset, timeZone, unit) to RLE_DICTIONARY, unique strings
// (id, sourceData) to PLAIN; definition levels as RLE/bit-packed hybrid; DATA_PAGE v1.
// Pages are cut by size (PAGE_BYTES of values); string statistics are truncated, not dropped.
// Page headers and the footer are the structures of parquet.thrift (thrift.ts). Synchronous
// and free of I/O, so it can move to a worker thread as is.
import { endianness } from 'node:os';
import type { Compression } from '../../lib/sink.js';
import type { ColumnSpec } from '../../lib/schema.js';
import { compressBlock } from '../compression.js';
import type { ColumnData, ColumnTable, NumberColumn, StringColumn } from '../columns.js';
import { ByteWriter } from './byte-writer.js';
import { PARQUET_MAGIC, encodeFooter, physicalType } from './footer.js';
import { CompressionCodec, Encoding, PageType, serializePageHeader } from './thrift.js';
import type { ColumnChunk, PageHeader, RowGroup, SortingColumn, Statistics } from './thrift.js';

/**
 * Typed arrays are copied into PLAIN pages byte for byte where the machine is little-endian, as
 * Parquet is; elsewhere numbers are written value by value.
 */
const LITTLE_ENDIAN = endianness() === 'LE';

export interface ParquetEncodeOptions {
  compression: Compression;
  keyValueMetadata: readonly (readonly [string, string])[];
  createdBy: string;
  /** Rows per row group (default 1,000,000). */
  rowGroupRows?: number;
  /** Rows per data page at most (default 65,536); pages are cut sooner by size (pageBytes). */
  pageRows?: number;
  /** Bytes of values per data page, before compression (default 1 MiB). */
  pageBytes?: number;
  /** Write numbers value by value, as on a big-endian machine (for tests). */
  portableNumbers?: boolean;
  /** Column names the rows are sorted by, in order (recorded as the row groups' sorting columns). */
  sortedBy?: readonly string[];
}

const CODEC = {
  none: CompressionCodec.UNCOMPRESSED,
  snappy: CompressionCodec.SNAPPY,
  zstd: CompressionCodec.ZSTD,
} as const;

/** String min/max longer than this (UTF-8 bytes) are truncated to bounds of this length. */
export const MAX_STAT_BYTES = 64;
const PAGE_BYTES = 1 << 20;
const MAX_DICTIONARY_ENTRIES = 1 << 16;
const MAX_DICTIONARY_BYTES = 1 << 20;

// ---------------------------------------------------------------------------------------------
// RLE / bit-packed hybrid (definition levels, dictionary indices).

function runOfEightAt(values: ArrayLike<number>, at: number, end: number): boolean {
  if (at + 8 > end) return false;
  const v = values[at];
  for (let k = 1; k < 8; k++) if (values[at + k] !== v) return false;
  return true;
}

/** Appends values[start, end) encoded as RLE/bit-packed hybrid runs (bitWidth ≤ 24). */
export function encodeHybrid(values: ArrayLike<number>, start: number, end: number, bitWidth: number, w: ByteWriter): void {
  const byteWidth = (bitWidth + 7) >> 3;
  let i = start;
  while (i < end) {
    const v = values[i]!;
    let j = i + 1;
    while (j < end && values[j] === v) j++;
    if (j - i >= 8) {
      w.varint((j - i) * 2);
      w.ensure(byteWidth);
      for (let b = 0; b < byteWidth; b++) w.buf[w.pos++] = (v >>> (8 * b)) & 0xff;
      i = j;
      continue;
    }
    // Bit-pack groups of 8 until a run of 8 equal values starts at a group boundary.
    let g = i + 8;
    while (g < end && !runOfEightAt(values, g, end)) g += 8;
    const stop = Math.min(g, end);
    const groups = Math.ceil((stop - i) / 8);
    w.varint(groups * 2 + 1);
    w.ensure(groups * bitWidth);
    const out = w.buf;
    let pos = w.pos;
    let acc = 0;
    let bits = 0;
    const last = i + groups * 8;
    for (let k = i; k < last; k++) {
      const value = k < stop ? values[k]! : 0; // the last group is padded with zeros
      acc |= value << bits;
      bits += bitWidth;
      while (bits >= 8) {
        out[pos++] = acc & 0xff;
        acc >>>= 8;
        bits -= 8;
      }
    }
    w.pos = pos;
    i = stop;
  }
}

function bitWidthOf(maxValue: number): number {
  let width = 0;
  while (maxValue >= 1 << width && width < 32) width++;
  return width;
}

// ---------------------------------------------------------------------------------------------
// UTF-8 strings.

/** Byte length of a string as UTF-8 (unpaired surrogates count as U+FFFD, as Buffer writes them). */
function utf8Length(s: string): number {
  let n = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && k + 1 < s.length && (s.charCodeAt(k + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      k++;
    } else n += 3;
  }
  return n;
}

/** Compares as UTF-8 bytes (code point order), which is Parquet's order for strings. */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) {
    let ca = a.charCodeAt(k);
    let cb = b.charCodeAt(k);
    if (ca !== cb) {
      // UTF-16 order puts U+E000..U+FFFF after surrogates; code point order does the opposite.
      if (ca >= 0xd800 && cb >= 0xd800) {
        ca = ca >= 0xe000 ? ca - 0x800 : ca + 0x2000;
        cb = cb >= 0xe000 ? cb - 0x800 : cb + 0x2000;
      }
      return ca - cb;
    }
  }
  return a.length - b.length;
}

interface EncodedStrings {
  /** UTF-8 of all strings, back to back. */
  bytes: Buffer;
  /** Byte length of each string. */
  lengths: Int32Array;
  ascii: boolean;
}

function encodeStrings(strings: readonly string[]): EncodedStrings {
  const joined = strings.join('');
  const bytes = Buffer.from(joined, 'utf8');
  const lengths = new Int32Array(strings.length);
  const ascii = bytes.length === joined.length;
  for (let k = 0; k < strings.length; k++) lengths[k] = ascii ? strings[k]!.length : utf8Length(strings[k]!);
  return { bytes, lengths, ascii };
}

/** PLAIN BYTE_ARRAY: a 4-byte length before each value. */
function writePlainStrings(enc: EncodedStrings, w: ByteWriter): void {
  const { bytes, lengths } = enc;
  w.ensure(bytes.length + 4 * lengths.length);
  const out = w.buf;
  let pos = w.pos;
  let src = 0;
  for (let k = 0; k < lengths.length; k++) {
    const len = lengths[k]!;
    out[pos] = len & 0xff;
    out[pos + 1] = (len >>> 8) & 0xff;
    out[pos + 2] = (len >>> 16) & 0xff;
    out[pos + 3] = len >>> 24;
    pos += 4;
    if (len > 64) {
      bytes.copy(out, pos, src, src + len);
      pos += len;
      src += len;
    } else {
      for (let e = src + len; src < e; ) out[pos++] = bytes[src++]!;
    }
  }
  w.pos = pos;
}

const LENGTH_PREFIXES: string[] = [];

/** The 4-byte little-endian length before a PLAIN value, as four latin1 characters. */
function lengthPrefix(len: number): string {
  if (len < 1024) return (LENGTH_PREFIXES[len] ??= String.fromCharCode(len & 0xff, (len >>> 8) & 0xff, 0, 0));
  return String.fromCharCode(len & 0xff, (len >>> 8) & 0xff, (len >>> 16) & 0xff, len >>> 24);
}

/**
 * Characters joined at a time: a string past ~128 KB goes to V8's large-object space, which cost
 * about 1 ms of CPU each to allocate and free (a page of a day's steps and calories ids is ~150 KB).
 */
const JOIN_CHARS = 32 * 1024;

/**
 * PLAIN BYTE_ARRAY values of all-ASCII strings appended to `w`, a group of values at a time in
 * two native calls (join, latin1 write) instead of one copy per value. False, with `w` as it
 * was, when a value is not ASCII.
 */
function writePlainAscii(strings: readonly string[], w: ByteWriter): boolean {
  let total = 0;
  for (let k = 0; k < strings.length; k++) total += 4 + strings[k]!.length;
  w.ensure(total);
  const start = w.pos;
  const group: string[] = [];
  const pieces: string[] = [];
  for (let from = 0; from < strings.length; ) {
    let chars = 0;
    group.length = 0;
    while (from < strings.length && (group.length === 0 || chars + strings[from]!.length <= JOIN_CHARS)) {
      chars += strings[from]!.length;
      group.push(strings[from++]!);
    }
    const joined = group.join('');
    if (Buffer.byteLength(joined, 'utf8') !== joined.length) {
      w.pos = start;
      return false;
    }
    pieces.length = 0;
    for (const s of group) pieces.push(lengthPrefix(s.length), s);
    w.pos += w.buf.write(pieces.join(''), w.pos, 'latin1');
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Statistics.

interface ColumnStats {
  nullCount: number;
  min: Buffer | null;
  max: Buffer | null;
  /** False when min or max is a truncated bound rather than a value of the column. */
  minExact: boolean;
  maxExact: boolean;
}

function statsStruct(stats: ColumnStats, signedLegacy: boolean): Statistics {
  const out: Statistics = { null_count: stats.nullCount };
  if (stats.min !== null) {
    out.min_value = stats.min;
    if (!stats.minExact) out.is_min_value_exact = false;
  }
  if (stats.max !== null) {
    out.max_value = stats.max;
    if (!stats.maxExact) out.is_max_value_exact = false;
  }
  // The legacy fields are read with signed comparison; right for numbers, not for strings.
  if (signedLegacy && stats.min !== null && stats.max !== null) {
    out.min = stats.min;
    out.max = stats.max;
  }
  return out;
}

const noStats = (nullCount: number): ColumnStats => ({ nullCount, min: null, max: null, minExact: true, maxExact: true });

/** The UTF-8 of `s`, cut to at most `limit` bytes at a character boundary. */
function utf8Prefix(bytes: Buffer, limit: number): Buffer {
  let end = limit;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // not inside a character
  return bytes.subarray(0, end);
}

/**
 * An upper bound of every string that starts like `bytes` within `limit` bytes: the prefix with
 * its last ASCII byte below 0x7f incremented (what follows dropped), so it stays valid UTF-8.
 * Null when there is no such byte (no bound that short).
 */
function utf8UpperBound(bytes: Buffer, limit: number): Buffer | null {
  const prefix = utf8Prefix(bytes, limit);
  for (let k = prefix.length - 1; k >= 0; k--) {
    if (prefix[k]! < 0x7f) {
      const bound = Buffer.from(prefix.subarray(0, k + 1));
      bound[k]!++;
      return bound;
    }
  }
  return null;
}

function numberBytes(type: NumberColumn['type'], value: number): Buffer {
  if (type === 'boolean') return Buffer.from([value ? 1 : 0]);
  if (type === 'int32') {
    const b = Buffer.alloc(4);
    b.writeInt32LE(value, 0);
    return b;
  }
  const b = Buffer.alloc(8);
  if (type === 'double') b.writeDoubleLE(value, 0);
  else b.writeBigInt64LE(BigInt(value), 0);
  return b;
}

function numberStats(col: NumberColumn, start: number, end: number): ColumnStats {
  const { values, valid } = col;
  let min = Infinity;
  let max = -Infinity;
  let nullCount = 0;
  for (let i = start; i < end; i++) {
    if (valid !== null && valid[i] === 0) {
      nullCount++;
      continue;
    }
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min > max) return noStats(nullCount); // all null (or all NaN)
  // Parquet asks for -0 as a min of zero and +0 as a max of zero.
  if (col.type === 'double') {
    if (min === 0) min = -0;
    if (max === 0) max = 0;
  }
  return { nullCount, min: numberBytes(col.type, min), max: numberBytes(col.type, max), minExact: true, maxExact: true };
}

/**
 * Min and max of `candidates[start, end)` (nulls skipped) in UTF-8 byte order; a value longer
 * than MAX_STAT_BYTES becomes a bound of that length (is_*_value_exact false).
 */
function stringStats(candidates: readonly (string | null)[], start: number, end: number, ascii: boolean, nullCount: number): ColumnStats {
  let min: string | null = null;
  let max: string | null = null;
  for (let i = start; i < end; i++) {
    const s = candidates[i];
    if (s === null || s === undefined) continue;
    if (min === null || max === null) min = max = s;
    else if (ascii ? s < min : compareUtf8(s, min) < 0) min = s;
    else if (ascii ? s > max : compareUtf8(s, max) > 0) max = s;
  }
  if (min === null || max === null) return noStats(nullCount);
  const minBytes = Buffer.from(min, 'utf8');
  const maxBytes = Buffer.from(max, 'utf8');
  const minExact = minBytes.length <= MAX_STAT_BYTES;
  const maxExact = maxBytes.length <= MAX_STAT_BYTES;
  return {
    nullCount,
    min: minExact ? minBytes : utf8Prefix(minBytes, MAX_STAT_BYTES),
    max: maxExact ? maxBytes : utf8UpperBound(maxBytes, MAX_STAT_BYTES),
    minExact,
    maxExact,
  };
}

// ---------------------------------------------------------------------------------------------
// Pages and column chunks.

interface ChunkResult {
  parts: Buffer[];
  bytes: number;
  uncompressed: number;
  dictionaryPageOffset: number | null;
  dataPageOffset: number;
  encodings: (typeof Encoding)[keyof typeof Encoding][];
  stats: ColumnStats;
}

class ChunkBuilder {
  parts: Buffer[] = [];
  bytes = 0;
  uncompressed = 0;
  constructor(
    readonly baseOffset: number,
    readonly compression: Compression,
  ) {}

  get offset(): number {
    return this.baseOffset + this.bytes;
  }

  private push(header: PageHeader, body: Uint8Array, rawLength: number): void {
    const headerBytes = serializePageHeader(header);
    this.parts.push(headerBytes, Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    this.bytes += headerBytes.length + body.byteLength;
    this.uncompressed += headerBytes.length + rawLength;
  }

  dictionaryPage(raw: Buffer, entries: number): void {
    const body = compressBlock(this.compression, raw);
    this.push(
      {
        type: PageType.DICTIONARY_PAGE,
        uncompressed_page_size: raw.length,
        compressed_page_size: body.byteLength,
        dictionary_page_header: { num_values: entries, encoding: Encoding.PLAIN },
      },
      body,
      raw.length,
    );
  }

  dataPage(raw: Buffer, numValues: number, encoding: typeof Encoding.PLAIN | typeof Encoding.RLE_DICTIONARY): void {
    const body = compressBlock(this.compression, raw);
    this.push(
      {
        type: PageType.DATA_PAGE,
        uncompressed_page_size: raw.length,
        compressed_page_size: body.byteLength,
        data_page_header: {
          num_values: numValues,
          encoding,
          definition_level_encoding: Encoding.RLE,
          repetition_level_encoding: Encoding.RLE,
        },
      },
      body,
      raw.length,
    );
  }
}

/** Definition levels of rows [start, end) of a nullable column: 4-byte length + hybrid runs. */
function writeDefinitionLevels(valid: Uint8Array | null, start: number, end: number, w: ByteWriter): void {
  const lengthAt = w.pos;
  w.u32(0);
  if (valid === null) {
    w.varint((end - start) * 2);
    w.u8(1);
  } else {
    encodeHybrid(valid, start, end, 1, w);
  }
  w.buf.writeUInt32LE(w.pos - lengthAt - 4, lengthAt);
}

/** How data pages are cut: at most `rows` rows and about `bytes` bytes of values each. */
interface Paging {
  rows: number;
  bytes: number;
  /** Numbers value by value (big-endian machines), not as a copy of their typed array. */
  portable: boolean;
}

/** Pages of rows [start, end) of a column whose values take `width` bytes each. */
function pageRanges(start: number, end: number, paging: Paging, width: number): [number, number][] {
  const rows = Math.max(1, Math.min(paging.rows, Math.floor(paging.bytes / width)));
  const ranges: [number, number][] = [];
  for (let s = start; s < end; s += rows) ranges.push([s, Math.min(end, s + rows)]);
  if (ranges.length === 0) ranges.push([start, start]);
  return ranges;
}

/** Pages of PLAIN strings: cut once their values (UTF-16 length + 4 each) reach paging.bytes. */
function stringPageRanges(values: readonly (string | null)[], start: number, end: number, paging: Paging): [number, number][] {
  const ranges: [number, number][] = [];
  let from = start;
  let size = 0;
  for (let i = start; i < end; i++) {
    size += 4 + (values[i]?.length ?? 0);
    if (size >= paging.bytes || i + 1 - from >= paging.rows) {
      ranges.push([from, i + 1]);
      from = i + 1;
      size = 0;
    }
  }
  if (from < end || ranges.length === 0) ranges.push([from, end]);
  return ranges;
}

/** Present values of rows [ps, pe) as little-endian bytes at w.buf[at…], one value at a time. */
function writeNumbersPortable(col: NumberColumn, ps: number, pe: number, w: ByteWriter, at: number): void {
  const { values, valid } = col;
  let pos = at;
  for (let i = ps; i < pe; i++) {
    if (valid !== null && valid[i] === 0) continue;
    const v = values[i]!;
    if (col.type === 'double') pos = w.buf.writeDoubleLE(v, pos);
    else if (col.type === 'int32') pos = w.buf.writeInt32LE(v, pos);
    else pos = w.buf.writeBigInt64LE(BigInt(v), pos);
  }
}

/** The chunk of a PLAIN-encoded column (numbers, booleans, unique strings): its pages and statistics. */
function plainChunkResult(cb: ChunkBuilder, dataPageOffset: number, stats: ColumnStats): ChunkResult {
  return {
    parts: cb.parts,
    bytes: cb.bytes,
    uncompressed: cb.uncompressed,
    dictionaryPageOffset: null,
    dataPageOffset,
    encodings: [Encoding.PLAIN, Encoding.RLE],
    stats,
  };
}

/** BOOLEAN, PLAIN: one bit per present value, least significant bit first. */
function encodeBooleanChunk(spec: ColumnSpec, col: NumberColumn, start: number, end: number, paging: Paging, cb: ChunkBuilder): ChunkResult {
  const dataPageOffset = cb.offset;
  for (const [ps, pe] of pageRanges(start, end, paging, 1 / 8)) {
    const w = new ByteWriter(16 + (pe - ps) / 4 + 16);
    if (spec.nullable) writeDefinitionLevels(col.valid, ps, pe, w);
    const valid = col.valid;
    const src = col.values;
    let count = 0;
    for (let i = ps; i < pe; i++) if (valid === null || valid[i]) count++;
    const bytes = (count + 7) >> 3;
    w.ensure(bytes);
    const at = w.pos;
    w.buf.fill(0, at, at + bytes);
    let k = 0;
    for (let i = ps; i < pe; i++) {
      if (valid !== null && valid[i] === 0) continue;
      if (src[i]) w.buf[at + (k >> 3)]! |= 1 << (k & 7);
      k++;
    }
    w.pos = at + bytes;
    cb.dataPage(w.result(), pe - ps, Encoding.PLAIN);
  }
  return plainChunkResult(cb, dataPageOffset, numberStats(col, start, end));
}

function encodeNumberChunk(spec: ColumnSpec, col: NumberColumn, start: number, end: number, paging: Paging, cb: ChunkBuilder): ChunkResult {
  if (col.type === 'boolean') return encodeBooleanChunk(spec, col, start, end, paging, cb);
  const dataPageOffset = cb.offset;
  const width = col.type === 'int32' ? 4 : 8;
  for (const [ps, pe] of pageRanges(start, end, paging, width)) {
    const w = new ByteWriter(16 + (pe - ps) * width + (spec.nullable ? (pe - ps) / 8 + 16 : 0));
    if (spec.nullable) writeDefinitionLevels(col.valid, ps, pe, w);
    const valid = col.valid;
    let count = pe - ps;
    if (valid !== null) {
      count = 0;
      for (let i = ps; i < pe; i++) count += valid[i]!;
    }
    w.ensure(count * width);
    const at = w.pos;
    if (paging.portable) writeNumbersPortable(col, ps, pe, w, at);
    else if (col.type === 'double' || col.type === 'int32') {
      const src = col.values as Float64Array | Int32Array;
      if (valid === null) {
        const view = new Uint8Array(src.buffer, src.byteOffset + ps * width, count * width);
        w.buf.set(view, at);
      } else {
        const dst = col.type === 'double' ? new Float64Array(count) : new Int32Array(count);
        let k = 0;
        for (let i = ps; i < pe; i++) if (valid[i]) dst[k++] = src[i]!;
        w.buf.set(new Uint8Array(dst.buffer), at);
      }
    } else {
      // int64 / timestamp: exact integers held as doubles, written as two's complement int64.
      const dst = new Int32Array(count * 2);
      const src = col.values as Float64Array;
      let k = 0;
      for (let i = ps; i < pe; i++) {
        if (valid !== null && valid[i] === 0) continue;
        const v = src[i]!;
        const hi = Math.floor(v / 4294967296);
        dst[k++] = (v - hi * 4294967296) | 0;
        dst[k++] = hi | 0;
      }
      w.buf.set(new Uint8Array(dst.buffer), at);
    }
    w.pos = at + count * width;
    cb.dataPage(w.result(), pe - ps, Encoding.PLAIN);
  }
  return plainChunkResult(cb, dataPageOffset, numberStats(col, start, end));
}

/** Dictionary of a string chunk, or null when the values are too varied for one to pay. */
function buildDictionary(values: readonly (string | null)[], start: number, end: number): { entries: string[]; indices: Int32Array } | null {
  // A sample decides quickly for columns of unique values (id, sourceData). 128 values, not
  // 1,024: a partition of a day's steps and calories (2,880 rows) encoded ~7% faster.
  const sampleEnd = Math.min(end, start + 128);
  const sample = new Set<string>();
  let sampled = 0;
  for (let i = start; i < sampleEnd; i++) {
    const v = values[i];
    if (v === null || v === undefined) continue;
    sample.add(v);
    sampled++;
  }
  if (sampled > 16 && sample.size > sampled / 2) return null;

  const map = new Map<string, number>();
  const entries: string[] = [];
  const indices = new Int32Array(end - start);
  let dictBytes = 0;
  let prev: string | null = null;
  let prevIndex = 0;
  let k = 0;
  for (let i = start; i < end; i++) {
    const v = values[i];
    if (v === null || v === undefined) continue;
    if (v === prev) {
      indices[k++] = prevIndex;
      continue;
    }
    let index = map.get(v);
    if (index === undefined) {
      index = entries.length;
      map.set(v, index);
      entries.push(v);
      dictBytes += v.length + 4;
      if (entries.length > MAX_DICTIONARY_ENTRIES || dictBytes > MAX_DICTIONARY_BYTES) return null;
    }
    prev = v;
    prevIndex = index;
    indices[k++] = index;
  }
  return { entries, indices: indices.subarray(0, k) };
}

function encodeStringChunk(spec: ColumnSpec, col: StringColumn, start: number, end: number, paging: Paging, cb: ChunkBuilder): ChunkResult {
  const values = col.values;
  let nullCount = 0;
  for (let i = start; i < end; i++) if (values[i] === null || values[i] === undefined) nullCount++;
  const validOf = (): Uint8Array | null => {
    if (nullCount === 0) return null;
    const valid = new Uint8Array(values.length);
    for (let i = start; i < end; i++) valid[i] = values[i] === null || values[i] === undefined ? 0 : 1;
    return valid;
  };
  const valid = validOf();
  const dict = buildDictionary(values, start, end);

  if (dict !== null) {
    const dictionaryPageOffset = cb.offset;
    const enc = encodeStrings(dict.entries);
    const dw = new ByteWriter(enc.bytes.length + 4 * dict.entries.length + 16);
    writePlainStrings(enc, dw);
    cb.dictionaryPage(dw.result(), dict.entries.length);
    const dataPageOffset = cb.offset;
    // Width 0 is legal for a one-entry dictionary, but not every reader takes it.
    const bitWidth = Math.max(1, bitWidthOf(dict.entries.length - 1));
    let k = 0;
    // Indices take at most 3 bytes each (bit width ≤ 17).
    for (const [ps, pe] of pageRanges(start, end, paging, 3)) {
      const w = new ByteWriter(64 + (pe - ps) / 4);
      if (spec.nullable) writeDefinitionLevels(valid, ps, pe, w);
      let count = pe - ps;
      if (valid !== null) {
        count = 0;
        for (let i = ps; i < pe; i++) count += valid[i]!;
      }
      w.u8(bitWidth);
      encodeHybrid(dict.indices, k, k + count, bitWidth, w);
      k += count;
      cb.dataPage(w.result(), pe - ps, Encoding.RLE_DICTIONARY);
    }
    return {
      parts: cb.parts,
      bytes: cb.bytes,
      uncompressed: cb.uncompressed,
      dictionaryPageOffset,
      dataPageOffset,
      encodings: [Encoding.PLAIN, Encoding.RLE, Encoding.RLE_DICTIONARY],
      stats: stringStats(dict.entries, 0, dict.entries.length, enc.ascii, nullCount),
    };
  }

  // Mostly unique values (id, sourceData).
  const dataPageOffset = cb.offset;
  let ascii = true;
  for (const [ps, pe] of stringPageRanges(values, start, end, paging)) {
    const strings: string[] = [];
    for (let i = ps; i < pe; i++) {
      const v = values[i];
      if (v !== null && v !== undefined) strings.push(v);
    }
    const w = new ByteWriter(64 + (pe - ps) / 8);
    if (spec.nullable) writeDefinitionLevels(valid, ps, pe, w);
    if (!writePlainAscii(strings, w)) {
      ascii = false;
      writePlainStrings(encodeStrings(strings), w);
    }
    cb.dataPage(w.result(), pe - ps, Encoding.PLAIN);
  }
  return plainChunkResult(cb, dataPageOffset, stringStats(values, start, end, ascii, nullCount));
}

function encodeChunk(spec: ColumnSpec, col: ColumnData, start: number, end: number, paging: Paging, cb: ChunkBuilder): ChunkResult {
  if (col.type !== spec.type) throw new Error(`column ${spec.name}: buffer of type ${col.type} for a ${spec.type} column`);
  return col.type === 'string' ? encodeStringChunk(spec, col, start, end, paging, cb) : encodeNumberChunk(spec, col, start, end, paging, cb);
}

/** Encodes a whole Parquet file. `specs` and `table.columns` are aligned. */
export function encodeParquet(specs: readonly ColumnSpec[], table: ColumnTable, options: ParquetEncodeOptions): Buffer {
  if (table.columns.length !== specs.length) {
    throw new Error(`encodeParquet: ${table.columns.length} column buffers for ${specs.length} columns`);
  }
  const rowGroupRows = Math.max(1, options.rowGroupRows ?? 1_000_000);
  const paging: Paging = {
    rows: Math.max(1, options.pageRows ?? 65_536),
    bytes: Math.max(1, options.pageBytes ?? PAGE_BYTES),
    portable: options.portableNumbers === true || !LITTLE_ENDIAN,
  };
  const codec = CODEC[options.compression];
  const parts: Buffer[] = [PARQUET_MAGIC];
  let offset = PARQUET_MAGIC.length;
  const rowGroups: RowGroup[] = [];
  const sortingColumns = (options.sortedBy ?? [])
    .map((name) => specs.findIndex((s) => s.name === name))
    .filter((index) => index >= 0)
    .map((index): SortingColumn => ({ column_idx: index, descending: false, nulls_first: true }));

  for (let start = 0; start < table.rowCount || (start === 0 && rowGroups.length === 0); start += rowGroupRows) {
    const end = Math.min(table.rowCount, start + rowGroupRows);
    const columns: ColumnChunk[] = [];
    let groupUncompressed = 0;
    specs.forEach((spec, c) => {
      const cb = new ChunkBuilder(offset, options.compression);
      const chunk = encodeChunk(spec, table.columns[c]!, start, end, paging, cb);
      const meta = {
        type: physicalType(spec.type),
        encodings: chunk.encodings,
        path_in_schema: [spec.name],
        codec,
        num_values: end - start,
        total_uncompressed_size: chunk.uncompressed,
        total_compressed_size: chunk.bytes,
        data_page_offset: chunk.dataPageOffset,
        statistics: statsStruct(chunk.stats, spec.type !== 'string'),
        ...(chunk.dictionaryPageOffset === null ? {} : { dictionary_page_offset: chunk.dictionaryPageOffset }),
      };
      columns.push({ file_offset: chunk.dictionaryPageOffset ?? chunk.dataPageOffset, meta_data: meta });
      for (const p of chunk.parts) parts.push(p);
      offset += chunk.bytes;
      groupUncompressed += chunk.uncompressed;
    });
    rowGroups.push({
      columns,
      total_byte_size: groupUncompressed,
      num_rows: end - start,
      ...(sortingColumns.length > 0 ? { sorting_columns: sortingColumns } : {}),
    });
    if (table.rowCount === 0) break;
  }

  parts.push(
    encodeFooter({
      specs,
      numRows: table.rowCount,
      rowGroups,
      keyValueMetadata: options.keyValueMetadata,
      createdBy: options.createdBy,
    }),
  );
  return Buffer.concat(parts);
}
