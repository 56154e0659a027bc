// Types for the untyped CommonJS modules the sinks use (only what they touch).

declare module 'snappyjs' {
  function compress<T extends Uint8Array | ArrayBuffer>(input: T): T;
  function uncompress<T extends Uint8Array | ArrayBuffer>(input: T): T;
  const snappy: { compress: typeof compress; uncompress: typeof uncompress };
  export default snappy;
}
