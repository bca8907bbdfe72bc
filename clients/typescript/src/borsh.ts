/**
 * The subset of borsh that Tally's wire format uses (docs/wire-format.md):
 * little-endian integers, u32 length prefixes, enum variants as one u8,
 * Option as 0/1, fixed arrays raw. The reader checks every length against
 * what is left before it allocates, and refuses trailing bytes.
 */

import { TallyDecodeError, concatBytes, utf8 } from './bytes.js';

const U64_MAX = (1n << 64n) - 1n;
const U32_MAX = 0xffff_ffff;

export class BorshWriter {
  private parts: Uint8Array[] = [];

  u8(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`u8 out of range: ${v}`);
    this.parts.push(Uint8Array.of(v));
    return this;
  }

  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > U32_MAX) throw new RangeError(`u32 out of range: ${v}`);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.parts.push(b);
    return this;
  }

  u64(v: bigint): this {
    if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new RangeError(`u64 out of range: ${String(v)}`);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    this.parts.push(b);
    return this;
  }

  /** Fixed-size bytes, written raw (keys, hashes, signatures). */
  fixed(bytes: Uint8Array, n: number, what: string): this {
    if (bytes.length !== n) throw new RangeError(`${what} must be ${n} bytes, found ${bytes.length}`);
    this.parts.push(bytes);
    return this;
  }

  /** `Vec<u8>`: u32 length, then the bytes. */
  bytes(bytes: Uint8Array): this {
    this.u32(bytes.length);
    this.parts.push(bytes);
    return this;
  }

  /** `String`: u32 byte length, then UTF-8. */
  string(s: string): this {
    return this.bytes(utf8.encode(s));
  }

  /** Raw bytes already encoded. */
  raw(bytes: Uint8Array): this {
    this.parts.push(bytes);
    return this;
  }

  finish(): Uint8Array {
    return concatBytes(...this.parts);
  }
}

export class BorshReader {
  private at = 0;

  /**
   * `what` names the object in every error. Input longer than `maxBytes` is
   * refused before anything is read.
   */
  constructor(
    private readonly buf: Uint8Array,
    readonly what: string,
    maxBytes: number,
  ) {
    if (buf.length > maxBytes) {
      throw new TallyDecodeError(`${what} is ${buf.length} bytes, more than the limit of ${maxBytes}`);
    }
  }

  private take(n: number, field: string): Uint8Array {
    if (n > this.buf.length - this.at) {
      throw new TallyDecodeError(
        `${this.what} is malformed: ${field} needs ${n} bytes at offset ${this.at}, only ${this.buf.length - this.at} left`,
      );
    }
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  u8(field: string): number {
    return this.take(1, field)[0]!;
  }

  bool(field: string): boolean {
    const v = this.u8(field);
    if (v > 1) throw new TallyDecodeError(`${this.what} is malformed: ${field} is a bool of value ${v}`);
    return v === 1;
  }

  u32(field: string): number {
    const b = this.take(4, field);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }

  u64(field: string): bigint {
    const b = this.take(8, field);
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  }

  fixed(n: number, field: string): Uint8Array {
    return this.take(n, field).slice();
  }

  bytes(field: string): Uint8Array {
    const len = this.u32(`${field} length`);
    return this.take(len, field).slice();
  }

  string(field: string): string {
    return utf8.decode(this.bytes(field), `${this.what}: ${field}`);
  }

  /**
   * A `Vec<T>` of elements at least `minElementBytes` long each: the count
   * is checked against the bytes left before any element is read.
   */
  vec<T>(field: string, minElementBytes: number, read: (i: number) => T): T[] {
    const n = this.u32(`${field} count`);
    if (n * Math.max(minElementBytes, 1) > this.buf.length - this.at) {
      throw new TallyDecodeError(
        `${this.what} is malformed: ${field} claims ${n} elements, more than the ${this.buf.length - this.at} bytes left can hold`,
      );
    }
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(i));
    return out;
  }

  option<T>(field: string, read: () => T): T | null {
    const tag = this.u8(`${field} option tag`);
    if (tag === 0) return null;
    if (tag === 1) return read();
    throw new TallyDecodeError(`${this.what} is malformed: ${field} has option tag ${tag}`);
  }

  /** Refuses trailing bytes, so that encode(decode(b)) == b. */
  end(): void {
    if (this.at !== this.buf.length) {
      throw new TallyDecodeError(`${this.what} is malformed: ${this.buf.length - this.at} trailing bytes`);
    }
  }
}
