/**
 * JSON that keeps every integer exact: integer literals too long for a
 * double (more than 15 digits) are read as strings, so u64 values in
 * `ledger_getGenesis` (balances, powers) survive. Everything else is as
 * JSON.parse gives it.
 */

/** Integers with more digits than this may not be exact as a double. */
const SAFE_DIGITS_MAX = 15;

export function parseJsonExact(text: string): unknown {
  let out = '';
  let from = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i += 2;
        else if (d === 0x22) { i++; break; }
        else i++;
      }
      continue;
    }
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      const start = i;
      i++;
      let integer = true;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d >= 0x30 && d <= 0x39) i++;
        else if (d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d) { integer = false; i++; }
        else break;
      }
      const digits = text.charCodeAt(start) === 0x2d ? i - start - 1 : i - start;
      if (integer && digits > SAFE_DIGITS_MAX) {
        out += text.slice(from, start) + '"' + text.slice(start, i) + '"';
        from = i;
      }
      continue;
    }
    i++;
  }
  return JSON.parse(from === 0 ? text : out + text.slice(from));
}
