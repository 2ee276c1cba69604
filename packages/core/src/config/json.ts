import { ConsulEcsError } from '../util/errors.js';

/**
 * Parses configuration JSON. A syntax error is reported with its line and
 * column and what was expected there, without quoting the text around it
 * (which may hold secrets): V8's own messages quote the input and, on
 * Node.js 20, give no position.
 */
export function parseConfigJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const problem = findJsonSyntaxError(text);
    const where = problem ? `line ${problem.line}, column ${problem.column}: ${problem.reason}` : 'it does not parse';
    throw new ConsulEcsError('config-invalid', `${source} is not valid JSON: ${where}; fix the JSON syntax`);
  }
}

export interface JsonSyntaxError {
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units. */
  column: number;
  reason: string;
}

/** Locates the first JSON syntax error in `text` (RFC 8259), or undefined if there is none. */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  let i = 0;

  const fail = (expected: string): never => {
    throw new JsonScanError(i, `expected ${expected}, found ${describeChar(text, i)}`);
  };
  const skipSpace = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const expect = (char: string, expected: string): void => {
    if (text[i] !== char) fail(expected);
    i++;
  };

  const value = (): void => {
    skipSpace();
    const c = text[i];
    if (c === '{') return object();
    if (c === '[') return array();
    if (c === '"') return string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return;
      }
    }
    fail('a value');
  };

  const object = (): void => {
    i++;
    skipSpace();
    if (text[i] === '}') {
      i++;
      return;
    }
    for (;;) {
      skipSpace();
      if (text[i] !== '"') fail('a double-quoted property name');
      string();
      skipSpace();
      expect(':', "':' after the property name");
      value();
      skipSpace();
      if (text[i] === '}') {
        i++;
        return;
      }
      expect(',', "',' or '}' after the property value");
    }
  };

  const array = (): void => {
    i++;
    skipSpace();
    if (text[i] === ']') {
      i++;
      return;
    }
    for (;;) {
      value();
      skipSpace();
      if (text[i] === ']') {
        i++;
        return;
      }
      expect(',', "',' or ']' after the array element");
    }
  };

  const string = (): void => {
    i++;
    for (;;) {
      const c = text[i];
      if (c === undefined) fail("a closing '\"'");
      if (c === '"') {
        i++;
        return;
      }
      if (c! < ' ') fail("a closing '\"' (control characters must be escaped in strings)");
      if (c === '\\') {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail('four hex digits after \\u');
          i += 5;
        } else if (text[i] !== undefined && '"\\/bfnrt'.includes(text[i]!)) {
          i++;
        } else {
          fail('an escape sequence (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)');
        }
        continue;
      }
      i++;
    }
  };

  const number = (): void => {
    const match = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    match.lastIndex = i;
    if (!match.exec(text)) fail('a number');
    i = match.lastIndex;
  };

  try {
    value();
    skipSpace();
    if (i < text.length) fail('the end of the document');
    return undefined;
  } catch (err) {
    if (!(err instanceof JsonScanError)) throw err;
    return { ...lineAndColumn(text, err.offset), reason: err.reason };
  }
}

class JsonScanError extends Error {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lastNewline = before.lastIndexOf('\n');
  return { line: before.split('\n').length, column: offset - lastNewline };
}

/** One character, quoted when printable, as U+XXXX otherwise; never more of the input. */
function describeChar(text: string, offset: number): string {
  const code = text.codePointAt(offset);
  if (code === undefined) return 'the end of the input';
  if (code > 0x20 && code < 0x7f) return `'${String.fromCodePoint(code)}'`;
  return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}
