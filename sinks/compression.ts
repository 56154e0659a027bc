// Block codecs shared by the Parquet encoders and the Parquet/Arrow readers.
// snappy: the native `snappy` package (napi-rs, prebuilt per platform; ~2x snappyjs here),
// or snappyjs (pure JS) where no prebuilt binary loads. zstd: @bokuweb/zstd-wasm (WebAssembly, needs one async init;
// Node 20's zlib has no zstd). All calls after `loadCodec` are synchronous, so encoders
// stay plain functions.
import { createRequire } from 'node:module';
import { EtlError } from '../lib/errors.js';
import type { Compression } from '../lib/sink.js';

interface ZstdModule {
  compress(buf: Uint8Array, level?: number): Uint8Array;
  decompress(buf: Uint8Array): Uint8Array;
}

interface NativeSnappy {
  compressSync(input: Uint8Array, options: { copyOutputData: boolean }): Buffer;
  /** A Buffer with asBuffer: true (a string otherwise). */
  uncompressSync(input: Uint8Array, options: { asBuffer: true; copyOutputData: boolean }): Buffer;
}

// copyOutputData: by default the package hands back its own Rust buffers (mimalloc), which V8
// does not count as external memory, so garbage buffers piled up between GCs: 40-75 MB of RSS
// on a 6,000-partition run, and more the longer the run. Copied into a Node Buffer, the
// output is counted and collected like any other, and the Rust buffer is freed at once.
const SNAPPY_ENCODE = { copyOutputData: true };
const SNAPPY_DECODE = { asBuffer: true, copyOutputData: true } as const;

function loadNativeSnappy(): NativeSnappy | null {
  if (process.env['WEARABLE_ETL_SNAPPY'] === 'js') return null;
  try {
    return createRequire(import.meta.url)('snappy') as NativeSnappy;
  } catch {
    return null;
  }
}

const nativeSnappy = loadNativeSnappy();

interface SnappyJs {
  compress(input: Uint8Array): Uint8Array;
  uncompress(input: Uint8Array): Uint8Array;
}

/** snappyjs, loaded only where the native codec is not (it costs ~4 MB of RSS per thread). */
let snappyjsModule: SnappyJs | null = null;
function snappyjs(): SnappyJs {
  snappyjsModule ??= createRequire(import.meta.url)('snappyjs') as SnappyJs;
  return snappyjsModule;
}

/** Which snappy implementation is in use (reported by the bench). */
export const SNAPPY_IMPLEMENTATION = nativeSnappy === null ? 'snappyjs' : 'snappy (native)';

let zstd: ZstdModule | null = null;
let zstdLoading: Promise<ZstdModule> | null = null;

/** zstd level: 3 is zstd's own default, a good speed/size balance for analytics files. */
export const ZSTD_LEVEL = 3;

async function loadZstd(): Promise<ZstdModule> {
  if (zstd) return zstd;
  zstdLoading ??= (async () => {
    const mod = await import('@bokuweb/zstd-wasm');
    await mod.init();
    zstd = { compress: mod.compress, decompress: mod.decompress };
    return zstd;
  })();
  return zstdLoading;
}

/** Makes the codec usable synchronously; call once before encoding or decoding with it. */
export async function loadCodec(compression: Compression): Promise<void> {
  if (compression === 'zstd') await loadZstd();
}

function zstdModule(): ZstdModule {
  if (!zstd) throw new EtlError('SINK', 'zstd codec used before loadCodec("zstd") finished');
  return zstd;
}

export function compressBlock(compression: Compression, data: Uint8Array): Uint8Array {
  switch (compression) {
    case 'none':
      return data;
    case 'snappy':
      return nativeSnappy === null ? snappyjs().compress(data) : nativeSnappy.compressSync(data, SNAPPY_ENCODE);
    case 'zstd':
      return zstdModule().compress(data, ZSTD_LEVEL);
  }
}

export function decompressSnappy(data: Uint8Array): Uint8Array {
  if (nativeSnappy === null) return snappyjs().uncompress(data);
  return nativeSnappy.uncompressSync(data, SNAPPY_DECODE);
}

export function decompressZstd(data: Uint8Array): Uint8Array {
  return zstdModule().decompress(data);
}
