/**
 * Request-shape checking shared by the protocol stand-ins (Glue, Athena): the members, JSON types,
 * lengths, ranges, patterns and enums an AWS API reference documents for a request, checked the way
 * AWS's awsJson1_1 front ends do: a value of the wrong JSON type is a SerializationException; every
 * constraint violation is collected and reported together, worded like AWS's
 * "1 validation error detected: Value '…' at 'queryString' failed to satisfy constraint: …".
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Shape =
  | { t: 'string'; min?: number; max?: number; pattern?: RegExp; patternText?: string; enum?: readonly string[] }
  | { t: 'integer'; min?: number; max?: number }
  | { t: 'boolean' }
  | { t: 'timestamp' }
  | { t: 'list'; member: Shape; min?: number; max?: number }
  | { t: 'map'; key: Shape; value: Shape }
  | { t: 'structure'; members: Record<string, Shape>; required?: string[] }
  | { t: 'any' };

/** A value of the wrong JSON type (the stand-in answers SerializationException). */
export class SerializationError extends Error {}

/** "Single-line string pattern". */
const SINGLE_LINE_TEXT = '[\\u0020-\\uD7FF\\uE000-\\uFFFD\\uD800\\uDC00-\\uDBFF\\uDFFF\\t]*';
const SINGLE_LINE = /^[\u0020-\uD7FF\uE000-\uFFFD\uD800-\uDBFF\uDC00-\uDFFF\t]*$/;
/** "URI address multi-line string pattern". */
const MULTI_LINE_TEXT = '[\\u0020-\\uD7FF\\uE000-\\uFFFD\\uD800\\uDC00-\\uDBFF\\uDFFF\\r\\n\\t]*';
const MULTI_LINE = /^[\u0020-\uD7FF\uE000-\uFFFD\uD800-\uDBFF\uDC00-\uDFFF\r\n\t]*$/;

/** A string of min..max characters, with the single-line or multi-line pattern (or none). */
export const str = (min: number | undefined, max: number | undefined, line: 'single' | 'multi' | 'none' = 'single'): Shape => ({
  t: 'string',
  min,
  max,
  ...(line === 'single' ? { pattern: SINGLE_LINE, patternText: SINGLE_LINE_TEXT } : line === 'multi' ? { pattern: MULTI_LINE, patternText: MULTI_LINE_TEXT } : {}),
});
/** A string matching `patternText` (the API reference's pattern, matched whole). */
export const patterned = (patternText: string, min?: number, max?: number): Shape => ({ t: 'string', min, max, pattern: new RegExp(`^(?:${patternText})$`, 'u'), patternText });
export const enumOf = (...values: string[]): Shape => ({ t: 'string', enum: values });
export const struct = (members: Record<string, Shape>, required: string[] = []): Shape => ({ t: 'structure', members, required });
export const list = (member: Shape, min?: number, max?: number): Shape => ({ t: 'list', member, min, max });
export const map = (key: Shape, value: Shape): Shape => ({ t: 'map', key, value });
export const int = (min?: number, max?: number): Shape => ({ t: 'integer', min, max });
export const bool: Shape = { t: 'boolean' };
export const timestamp: Shape = { t: 'timestamp' };
export const any: Shape = { t: 'any' };

const lowerFirst = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);
const shown = (v: Json | undefined) => (v === undefined || v === null ? 'null' : typeof v === 'string' ? `'${v.length > 80 ? v.slice(0, 80) + '...' : v}'` : JSON.stringify(v));
const typeOf = (v: Json) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** Throws SerializationError for a value of the wrong JSON type; collects constraint violations. */
export function check(shape: Shape, value: Json | undefined, path: string, violations: string[]): void {
  if (value === undefined || value === null) return; // absence is checked by the parent's `required`
  const wrongType = (expected: string): never => {
    throw new SerializationError(`Expected ${expected} at '${path}' but found ${typeOf(value)}`);
  };
  const fail = (constraint: string) => violations.push(`Value ${shown(value)} at '${path}' failed to satisfy constraint: ${constraint}`);
  switch (shape.t) {
    case 'any':
      return;
    case 'string': {
      if (typeof value !== 'string') wrongType('a string');
      const s = value as string;
      const len = [...s].length;
      if (shape.min !== undefined && len < shape.min) fail(`Member must have length greater than or equal to ${shape.min}`);
      if (shape.max !== undefined && len > shape.max) fail(`Member must have length less than or equal to ${shape.max}`);
      if (shape.pattern !== undefined && !shape.pattern.test(s)) fail(`Member must satisfy regular expression pattern: ${shape.patternText}`);
      if (shape.enum !== undefined && !shape.enum.includes(s)) fail(`Member must satisfy enum value set: [${shape.enum.join(', ')}]`);
      return;
    }
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) wrongType('an integer');
      if (shape.min !== undefined && (value as number) < shape.min) fail(`Member must have value greater than or equal to ${shape.min}`);
      if (shape.max !== undefined && (value as number) > shape.max) fail(`Member must have value less than or equal to ${shape.max}`);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') wrongType('a boolean');
      return;
    case 'timestamp':
      if (typeof value !== 'number' || !Number.isFinite(value)) wrongType('a timestamp (epoch seconds)');
      return;
    case 'list': {
      if (!Array.isArray(value)) wrongType('a list');
      const items = value as Json[];
      if (shape.min !== undefined && items.length < shape.min) fail(`Member must have length greater than or equal to ${shape.min}`);
      if (shape.max !== undefined && items.length > shape.max) fail(`Member must have length less than or equal to ${shape.max}`);
      items.forEach((item, i) => {
        if (item === null) violations.push(`Value null at '${path}.${i + 1}.member' failed to satisfy constraint: Member must not be null`);
        else check(shape.member, item, `${path}.${i + 1}.member`, violations);
      });
      return;
    }
    case 'map': {
      if (typeof value !== 'object' || Array.isArray(value)) wrongType('a map');
      for (const [k, v] of Object.entries(value as JsonObject)) {
        check(shape.key, k, `${path}.${k}.key`, violations);
        if (v === null) violations.push(`Value null at '${path}.${k}.value' failed to satisfy constraint: Member must not be null`);
        else check(shape.value, v, `${path}.${k}.value`, violations);
      }
      return;
    }
    case 'structure': {
      if (typeof value !== 'object' || Array.isArray(value)) wrongType('a structure');
      const obj = value as JsonObject;
      for (const name of shape.required ?? []) {
        if (obj[name] === undefined || obj[name] === null) {
          violations.push(`Value null at '${path ? path + '.' : ''}${lowerFirst(name)}' failed to satisfy constraint: Member must not be null`);
        }
      }
      for (const [name, member] of Object.entries(shape.members)) {
        check(member, obj[name], `${path ? path + '.' : ''}${lowerFirst(name)}`, violations);
      }
      return;
    }
  }
}

/** AWS's wording for the collected violations, or undefined when there are none. */
export function validationMessage(violations: string[]): string | undefined {
  if (violations.length === 0) return undefined;
  return `${violations.length} validation error${violations.length > 1 ? 's' : ''} detected: ${violations.join('; ')}`;
}
