/**
 * Splits SQL text at the semicolons that end statements: not those inside 'strings', "identifiers",
 * $$dollar quotes$$, -- line comments or block comments. Returns the complete statements
 * (without their semicolons, blank ones dropped) and the unfinished rest, which a REPL keeps
 * reading lines into.
 */
export function splitStatements(text: string): { statements: string[]; rest: string } {
  const statements: string[] = [];
  let start = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      // A quote doubled inside is the quote itself; an unterminated one runs to the end.
      i++;
      while (i < n && !(text[i] === c && text[i + 1] !== c)) i += text[i] === c ? 2 : 1;
      i++;
    } else if (c === '-' && text[i + 1] === '-') {
      const end = text.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? n + 1 : end + 2;
    } else if (c === '$') {
      const tag = /^\$[A-Za-z_]*\$/.exec(text.slice(i, i + 64))?.[0];
      if (tag === undefined) i++;
      else {
        const end = text.indexOf(tag, i + tag.length);
        i = end < 0 ? n + 1 : end + tag.length;
      }
    } else if (c === ';') {
      const s = text.slice(start, i).trim();
      if (s.length > 0 && !onlyComments(s)) statements.push(s);
      start = ++i;
    } else i++;
  }
  // i > n: inside an unterminated string or comment, so the rest is unfinished even without a ';'.
  return { statements, rest: text.slice(start) };
}

/** True when `s` holds nothing but comments and whitespace. */
function onlyComments(s: string): boolean {
  return s.replace(/--[^\n]*(\n|$)/g, '').replace(/\/\*[\s\S]*?\*\//g, '').trim().length === 0;
}
