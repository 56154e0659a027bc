// Shared by test/state-pg-workers.test.ts and its worker child: each user's object, the
// bytes the test expects to find in the bucket (some over the multipart threshold).
export function userObject(user: string): Buffer {
  const n = Number(user.replace(/\D/g, ''));
  const size = n === 12 ? 6 * 1024 * 1024 + n : 1000 + n; // one multipart upload
  const data = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) data.writeUInt32LE(((i + n * 7919) * 2654435761) >>> 0, i);
  return data;
}
