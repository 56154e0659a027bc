// Tokens at rest: AES-256-GCM with a key from WEARABLE_ETL_TOKEN_KEY (32 bytes, as 64 hex
// digits or base64; `openssl rand -base64 32`). Each value gets a fresh 12-byte nonce, and the
// provider, user and column are bound in as associated data, so a ciphertext copied to another
// user's row or column does not decrypt. Without the key, tokens are stored as they are.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { EtlError } from '../../lib/errors.js';

export const TOKEN_KEY_VARIABLE = 'WEARABLE_ETL_TOKEN_KEY';
const PREFIX = 'v1';

export class TokenCipher {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new EtlError('USAGE', `${TOKEN_KEY_VARIABLE} must be 32 bytes`);
    this.key = key;
  }

  /** v1:<nonce>:<tag>:<ciphertext>, base64 each. */
  encrypt(plain: string, context: string): string {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [PREFIX, nonce.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join(':');
  }

  decrypt(sealed: string, context: string): string {
    const [prefix, nonce, tag, body] = sealed.split(':');
    if (prefix !== PREFIX || nonce === undefined || tag === undefined || body === undefined) {
      throw new EtlError('STATE', `a stored token (${context}) is not in the encrypted format`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(nonce, 'base64'));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new EtlError('STATE', `a stored token (${context}) does not decrypt: ${TOKEN_KEY_VARIABLE} is not the key it was encrypted with`);
    }
  }
}

/** The cipher for WEARABLE_ETL_TOKEN_KEY, or null when it is not set. The key is never echoed. */
export function tokenCipherFromEnv(env: NodeJS.ProcessEnv): TokenCipher | null {
  const text = env[TOKEN_KEY_VARIABLE]?.trim();
  if (!text) return null;
  let key: Buffer | null = null;
  if (/^[0-9a-fA-F]{64}$/.test(text)) key = Buffer.from(text, 'hex');
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) key = Buffer.from(text, 'base64');
  if (key === null || key.length !== 32) {
    throw new EtlError('USAGE', `${TOKEN_KEY_VARIABLE} must be 32 bytes written as 64 hex digits or base64 (openssl rand -base64 32)`);
  }
  return new TokenCipher(key);
}
