/**
 * A parser for the GVariant text format as `ostree show --raw` prints it (g_variant_print with
 * type annotations). It covers what commit objects hold: strings, numbers, booleans, arrays,
 * dictionaries, tuples, variants, byte arrays and bytestrings.
 */

/** A parsed GVariant value: dictionaries become objects, tuples and arrays become arrays. */
export type GValue = string | number | bigint | boolean | null | GValue[] | { [key: string]: GValue } | Uint8Array;

const TYPE_KEYWORDS = new Set([
  'boolean', 'byte', 'int16', 'uint16', 'int32', 'uint32', 'handle', 'int64', 'uint64', 'double',
  'string', 'objectpath', 'signature',
]);

class Parser {
  i = 0;
  constructor(readonly s: string) {}

  fail(what: string): never {
    throw new SyntaxError(`GVariant text: ${what} at offset ${this.i}: ${JSON.stringify(this.s.slice(this.i, this.i + 40))}`);
  }

  ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
  }

  peek(): string {
    this.ws();
    return this.s[this.i] ?? '';
  }

  expect(c: string): void {
    if (this.peek() !== c) this.fail(`expected '${c}'`);
    this.i++;
  }

  word(): string {
    this.ws();
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.s.slice(this.i));
    return m ? m[0] : '';
  }

  /** Skips an `@type` annotation (a GVariant type string). */
  skipTypeAnnotation(): void {
    this.i++; // '@'
    let depth = 0;
    while (this.i < this.s.length) {
      const c = this.s[this.i]!;
      if (c === '(' || c === '{') depth++;
      else if (c === ')' || c === '}') depth--;
      else if (/\s/.test(c) && depth === 0) break;
      this.i++;
      if (depth === 0 && !/[amM]/.test(c)) break;
    }
  }

  value(): GValue {
    const c = this.peek();
    if (c === '@') {
      this.skipTypeAnnotation();
      return this.value();
    }
    if (c === '(') return this.tuple();
    if (c === '[') return this.array();
    if (c === '{') return this.dict();
    if (c === '<') {
      this.i++;
      const v = this.value();
      this.expect('>');
      return v;
    }
    if (c === "'" || c === '"') return this.string();
    if (c === 'b' && (this.s[this.i + 1] === "'" || this.s[this.i + 1] === '"')) {
      this.i++;
      return new TextEncoder().encode(this.string());
    }
    const w = this.word();
    if (w === 'true' || w === 'false') {
      this.i += w.length;
      return w === 'true';
    }
    if (w === 'nothing') {
      this.i += w.length;
      return null;
    }
    if (w === 'just') {
      this.i += w.length;
      return this.value();
    }
    if (TYPE_KEYWORDS.has(w)) {
      this.i += w.length;
      return this.value();
    }
    return this.number();
  }

  number(): number | bigint {
    this.ws();
    const m = /^[-+]?(0x[0-9a-fA-F]+|[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?|inf|nan)/.exec(this.s.slice(this.i));
    if (!m) this.fail('unexpected token');
    this.i += m[0].length;
    const t = m[0];
    if (/^[-+]?[0-9]+$/.test(t) || /^[-+]?0x/.test(t)) {
      const b = BigInt(t.replace(/^\+/, ''));
      return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
    }
    return Number(t);
  }

  string(): string {
    const q = this.s[this.i]!;
    this.i++;
    let out = '';
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) this.fail('unterminated string');
      this.i++;
      if (c === q) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.s[this.i++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'a': out += '\x07'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'u': out += String.fromCodePoint(parseInt(this.s.slice(this.i, this.i + 4), 16)); this.i += 4; break;
        case 'U': out += String.fromCodePoint(parseInt(this.s.slice(this.i, this.i + 8), 16)); this.i += 8; break;
        default:
          if (e !== undefined && /[0-7]/.test(e)) {
            const m = /^[0-7]{1,3}/.exec(this.s.slice(this.i - 1))!;
            out += String.fromCharCode(parseInt(m[0], 8));
            this.i += m[0].length - 1;
          } else out += e ?? '';
      }
    }
  }

  tuple(): GValue[] {
    this.expect('(');
    const out: GValue[] = [];
    while (this.peek() !== ')') {
      out.push(this.value());
      if (this.peek() === ',') this.i++;
    }
    this.i++;
    return out;
  }

  array(): GValue[] | Uint8Array {
    this.expect('[');
    const out: GValue[] = [];
    let bytes = false;
    if (this.word() === 'byte') bytes = true;
    while (this.peek() !== ']') {
      out.push(this.value());
      if (this.peek() === ',') this.i++;
    }
    this.i++;
    return bytes ? Uint8Array.from(out as number[]) : out;
  }

  dict(): { [key: string]: GValue } {
    this.expect('{');
    const out: { [key: string]: GValue } = {};
    while (this.peek() !== '}') {
      const k = this.value();
      this.expect(':');
      out[String(k)] = this.value();
      if (this.peek() === ',') this.i++;
    }
    this.i++;
    return out;
  }
}

/** Parses one GVariant text value. */
export function parseGVariantText(text: string): GValue {
  const p = new Parser(text);
  const v = p.value();
  p.ws();
  if (p.i !== text.length) p.fail('trailing data');
  return v;
}

/** Converts a parsed value to plain JSON: byte arrays → hex strings, bigints → numbers or strings. */
export function gvalueToJson(v: GValue): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(gvalueToJson);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = gvalueToJson(x);
    return out;
  }
  return v;
}
