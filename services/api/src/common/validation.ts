import { type ErrorDetail, ValidationError } from '@meshplane/domain';
import { z } from 'zod';

/** `a.b[0].c` from a zod path, prefixed with `prefix` (e.g. `query`). */
export function formatPath(prefix: string, segments: readonly PropertyKey[]): string {
  let out = prefix;
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_$][\w$-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  return Array.isArray(v) ? 'array' : typeof v;
}

// Operator-facing wording for issues whose schema gives no message of its own.
const errorMap: z.core.$ZodErrorMap = (iss) => {
  if (iss.code === 'invalid_type') {
    if (iss.input === undefined) return 'is required';
    const expected = iss.expected === 'int' ? 'integer' : iss.expected;
    return `must be ${/^[aeiou]/.test(expected) ? 'an' : 'a'} ${expected}, got ${typeName(iss.input)}`;
  }
  if (iss.code === 'invalid_value') return `must be one of ${iss.values.map(String).join(', ')}`;
  return undefined;
};

/** Parses `input` with `schema` or throws one ValidationError listing every problem with its path. */
export function parseInput<S extends z.ZodType>(
  schema: S,
  input: unknown,
  prefix: string,
  what: string,
): z.output<S> {
  const r = schema.safeParse(input, { error: errorMap });
  if (r.success) return r.data;
  const details: ErrorDetail[] = [];
  for (const iss of r.error.issues) {
    if (iss.code === 'unrecognized_keys') {
      for (const k of iss.keys)
        details.push({ path: formatPath(prefix, [...iss.path, k]), message: 'unknown field' });
    } else {
      details.push({ path: formatPath(prefix, iss.path), message: iss.message });
    }
  }
  const first = details[0]!;
  const more = details.length > 1 ? ` (and ${details.length - 1} more)` : '';
  throw new ValidationError(`invalid ${what}: ${first.path || '(root)'} ${first.message}${more}`, details);
}

/** A non-negative integer carried as a query or path string. */
export const revisionString = z
  .string()
  .regex(/^\d{1,15}$/, 'must be a non-negative integer')
  .transform(Number);

/** An ISO-8601 timestamp carried as a query string. */
export const timestampString = z
  .string()
  .refine(
    (s) => /^\d{4}-\d{2}-\d{2}/.test(s) && !Number.isNaN(Date.parse(s)),
    'must be an ISO-8601 timestamp',
  )
  .transform((s) => new Date(s));
