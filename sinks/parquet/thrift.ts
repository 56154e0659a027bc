// A small Thrift compact-protocol writer for parquetjs-lite's generated Parquet types.
// The generated structs call `write(protocol)`; the protocol that ships with parquetjs-lite
// allocates with the deprecated `new Buffer()` on every integer, which Node makes costly.
// This one writes into one growable buffer. Only what the Parquet structs use is here.

const enum CompactType {
  BOOL_TRUE = 1,
  BOOL_FALSE = 2,
  BYTE = 3,
  I16 = 4,
  I32 = 5,
  I64 = 6,
  DOUBLE = 7,
  BINARY = 8,
  LIST = 9,
  SET = 10,
  MAP = 11,
  STRUCT = 12,
}

// Thrift.Type ids as the generated code passes them.
const COMPACT_OF: Record<number, CompactType> = {
  2: CompactType.BOOL_TRUE,
  3: CompactType.BYTE,
  4: CompactType.DOUBLE,
  6: CompactType.I16,
  8: CompactType.I32,
  10: CompactType.I64,
  11: CompactType.BINARY,
  12: CompactType.STRUCT,
  13: CompactType.MAP,
  14: CompactType.SET,
  15: CompactType.LIST,
};

function compactType(thriftType: number): CompactType {
  const t = COMPACT_OF[thriftType];
  if (t === undefined) throw new Error(`thrift type ${thriftType} is not supported by the compact writer`);
  return t;
}

export class CompactWriter {
  private buf = Buffer.allocUnsafe(256);
  private pos = 0;
  private lastFieldId = 0;
  private readonly fieldIds: number[] = [];
  private pendingBool: { id: number } | null = null;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  private byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  private varint(n: number): void {
    // n is a non-negative integer below 2^64 held exactly as a double (< 2^53 in practice).
    this.ensure(10);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  private fieldHeader(type: number, id: number): void {
    const delta = id - this.lastFieldId;
    if (delta > 0 && delta <= 15) this.byte((delta << 4) | type);
    else {
      this.byte(type);
      this.varint(id >= 0 ? id * 2 : -id * 2 - 1);
    }
    this.lastFieldId = id;
  }

  writeStructBegin(_name?: string): void {
    this.fieldIds.push(this.lastFieldId);
    this.lastFieldId = 0;
  }
  writeStructEnd(): void {
    this.lastFieldId = this.fieldIds.pop() ?? 0;
  }
  writeFieldBegin(_name: string, thriftType: number, id: number): void {
    if (thriftType === 2) this.pendingBool = { id }; // a bool's value goes into its field header
    else this.fieldHeader(compactType(thriftType), id);
  }
  writeFieldEnd(): void {}
  writeFieldStop(): void {
    this.byte(0);
  }
  writeListBegin(elemType: number, size: number): void {
    const t = compactType(elemType);
    if (size < 15) this.byte((size << 4) | t);
    else {
      this.byte(0xf0 | t);
      this.varint(size);
    }
  }
  writeListEnd(): void {}
  writeBool(value: boolean): void {
    if (this.pendingBool !== null) {
      this.fieldHeader(value ? CompactType.BOOL_TRUE : CompactType.BOOL_FALSE, this.pendingBool.id);
      this.pendingBool = null;
    } else this.byte(value ? CompactType.BOOL_TRUE : CompactType.BOOL_FALSE);
  }
  writeByte(value: number): void {
    this.byte(value & 0xff);
  }
  writeI16(value: number): void {
    this.writeI32(value);
  }
  writeI32(value: number): void {
    this.varint(value >= 0 ? value * 2 : -value * 2 - 1);
  }
  writeI64(value: unknown): void {
    let n: number;
    if (typeof value === 'number') n = value;
    else if (typeof value === 'bigint') n = Number(value);
    else if (value !== null && typeof value === 'object' && typeof (value as { toNumber?: unknown }).toNumber === 'function') {
      n = (value as { toNumber(): number }).toNumber(); // node-int64, used by parquetjs-lite
    } else throw new Error(`cannot write ${String(value)} as a thrift i64`);
    if (!Number.isSafeInteger(n)) throw new Error(`thrift i64 ${n} is outside the exact range of this writer`);
    this.varint(n >= 0 ? n * 2 : -n * 2 - 1);
  }
  writeDouble(value: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }
  writeString(value: string | Uint8Array): void {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    this.varint(bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
  writeBinary(value: string | Uint8Array): void {
    this.writeString(value);
  }

  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}

/** Serializes a generated Thrift struct with the compact protocol. */
export function serializeCompact(obj: { write(protocol: unknown): void }): Buffer {
  const w = new CompactWriter();
  obj.write(w);
  return w.result();
}
