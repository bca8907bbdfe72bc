/**
 * Byte helpers: `0x` hex as the node writes it, concatenation, comparison.
 * Hex input is accepted with or without `0x`, in either case.
 */

/** Thrown when input bytes or hex cannot be read; the message names what. */
export class TallyDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TallyDecodeError';
  }
}

const HEX_DIGITS = '0123456789abcdef';

/** Lowercase hex with a `0x` prefix. */
export function toHex(bytes: Uint8Array): string {
  let out = '0x';
  for (const b of bytes) out += HEX_DIGITS[b >> 4]! + HEX_DIGITS[b & 15]!;
  return out;
}

/**
 * Parses hex (with or without `0x`). `what` names the value in errors;
 * `maxBytes` refuses longer input before decoding it.
 */
export function fromHex(hex: string, what = 'hex', maxBytes = Number.MAX_SAFE_INTEGER): Uint8Array {
  if (typeof hex !== 'string') throw new TallyDecodeError(`${what}: expected a hex string, found ${typeof hex}`);
  const digits = hex.startsWith('0x') || hex.startsWith('0X') ? hex.slice(2) : hex;
  if (digits.length % 2 !== 0) throw new TallyDecodeError(`${what}: odd number of hex digits (${digits.length})`);
  if (digits.length / 2 > maxBytes) {
    throw new TallyDecodeError(`${what}: ${digits.length / 2} bytes, more than the limit of ${maxBytes}`);
  }
  const bad = digits.search(/[^0-9a-fA-F]/);
  if (bad >= 0) throw new TallyDecodeError(`${what}: invalid hex digit ${JSON.stringify(digits[bad])} at position ${bad}`);
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Parses hex of exactly `n` bytes. */
export function fromHexFixed(hex: string, n: number, what: string): Uint8Array {
  const bytes = fromHex(hex, what, n);
  if (bytes.length !== n) throw new TallyDecodeError(`${what}: expected ${n} bytes, found ${bytes.length}`);
  return bytes;
}

/** Accepts bytes as they are, or hex. */
export function asBytes(value: Uint8Array | string, what: string, maxBytes?: number): Uint8Array {
  if (value instanceof Uint8Array) return value;
  return fromHex(value, what, maxBytes);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Normalises a hex string to lowercase with `0x` (for comparing hashes). */
export function normHex(hex: string): string {
  const digits = hex.startsWith('0x') || hex.startsWith('0X') ? hex.slice(2) : hex;
  return '0x' + digits.toLowerCase();
}

export const utf8 = {
  encode: (s: string): Uint8Array => new TextEncoder().encode(s),
  decode: (b: Uint8Array, what: string): string => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      throw new TallyDecodeError(`${what}: not valid UTF-8`);
    }
  },
};
