/**
 * A reader for the one-line EDN maps of Jepsen histories, e.g.
 * `{:process 0, :type :invoke, :f :get, :key "7", :value nil}`.
 *
 * Only flat maps of keyword keys to scalars are supported (keywords, strings,
 * integers, nil, booleans), which is all these histories contain; anything
 * else is reported as a reason rather than guessed at.
 */

export interface EdnKeyword {
  readonly keyword: string;
}

export type EdnScalar = EdnKeyword | string | number | boolean | null;

export type EdnMapReadResult =
  | { readonly ok: true; readonly entries: ReadonlyMap<string, EdnScalar> }
  | { readonly ok: false; readonly reason: string };

const SYMBOL_CHARACTER = /[A-Za-z0-9_\-?!*+./<>=']/;
const STRING_ESCAPES: Readonly<Record<string, string>> = { '"': '"', "\\": "\\", n: "\n", t: "\t", r: "\r" };

class EdnSyntaxError extends Error {}

export function isEdnKeyword(value: EdnScalar | undefined): value is EdnKeyword {
  return typeof value === "object" && value !== null;
}

/** Reads `text` as one EDN map with keyword keys and scalar values. */
export function readEdnMap(text: string): EdnMapReadResult {
  let position = 0;

  const fail = (reason: string): never => {
    throw new EdnSyntaxError(`${reason} at column ${position + 1}`);
  };
  // Commas are whitespace in EDN.
  const skipSeparators = (): void => {
    while (position < text.length && /[\s,]/.test(text[position] as string)) position++;
  };
  const readSymbol = (): string => {
    const start = position;
    while (position < text.length && SYMBOL_CHARACTER.test(text[position] as string)) position++;
    return text.slice(start, position);
  };
  const readString = (): string => {
    position++; // opening quote
    let value = "";
    for (;;) {
      if (position >= text.length) fail("unterminated string");
      const character = text[position] as string;
      position++;
      if (character === '"') return value;
      if (character !== "\\") {
        value += character;
        continue;
      }
      const escaped = STRING_ESCAPES[text[position] ?? ""];
      if (escaped === undefined) fail(`unsupported escape \\${text[position] ?? ""}`);
      value += escaped;
      position++;
    }
  };
  const readScalar = (): EdnScalar => {
    const character = text[position];
    if (character === undefined) return fail("missing value");
    if (character === '"') return readString();
    if (character === ":") {
      position++;
      const name = readSymbol();
      return name === "" ? fail("empty keyword") : { keyword: name };
    }
    const symbol = readSymbol();
    if (symbol === "nil") return null;
    if (symbol === "true") return true;
    if (symbol === "false") return false;
    if (/^[-+]?\d+$/.test(symbol)) return Number(symbol);
    return fail(symbol === "" ? `unexpected ${JSON.stringify(character)}` : `unsupported value ${JSON.stringify(symbol)}`);
  };

  try {
    skipSeparators();
    if (text[position] !== "{") fail("expected '{'");
    position++;
    const entries = new Map<string, EdnScalar>();
    for (;;) {
      skipSeparators();
      if (position >= text.length) fail("missing '}'");
      if (text[position] === "}") {
        position++;
        break;
      }
      const key = readScalar();
      if (!isEdnKeyword(key)) fail("map keys must be keywords");
      const name = (key as EdnKeyword).keyword;
      if (entries.has(name)) fail(`duplicate key :${name}`);
      skipSeparators();
      if (text[position] === "}") fail(`key :${name} has no value`);
      entries.set(name, readScalar());
    }
    skipSeparators();
    if (position < text.length) fail("unexpected text after '}'");
    return { ok: true, entries };
  } catch (error) {
    if (error instanceof EdnSyntaxError) return { ok: false, reason: error.message };
    throw error;
  }
}
