import { z } from 'zod';
import { ValidationError } from './errors';
import { DEFAULT_NAMESPACE, KINDS, type Kind, type Resource, type ResourceRef } from './resource';

/*
 * Strict zod schemas per kind. Every object is strict (an unknown field is an
 * error, not silently dropped: a typo like `selecter` must not apply a spec that
 * means something else). Messages are written for operators; `parseResource`
 * turns zod issues into ValidationError details with dotted/bracketed paths.
 *
 * Bounds chosen here (others code against them):
 * - Workload.weight: integer 1..1000, absent means 1.
 * - Route backend weight: integer 0..10000, relative (not required to sum to 100);
 *   at least one backend must have weight > 0; 1..16 backends.
 * - Service.ports[].protocol is required (no TCP default), as is Route backend weight.
 * - node names are DNS-1123 labels (no dots: they end up in NATS subjects and pin paths).
 */

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// Octets 0-255 without leading zeros ("01" is octal to some parsers, so reject it).
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
// Kubernetes label name part / value: alnum at both ends, '-', '_', '.' inside.
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

export function isIPv4(s: string): boolean {
  return IPV4.test(s);
}

/** Kubernetes label key: `[prefix/]name`, prefix a DNS-1123 subdomain (<= 253), name <= 63. */
export function isLabelKey(s: string): boolean {
  const slash = s.indexOf('/');
  const name = slash < 0 ? s : s.slice(slash + 1);
  if (slash >= 0) {
    const prefix = s.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) return false;
  }
  return name.length > 0 && name.length <= 63 && LABEL_NAME.test(name);
}

/** Kubernetes label value: empty, or <= 63 chars with alnum at both ends. */
export function isLabelValue(s: string): boolean {
  return s === '' || (s.length <= 63 && LABEL_NAME.test(s));
}

const dnsLabel = z
  .string()
  .refine(isDns1123Label, 'must be a DNS-1123 label (lowercase letters, digits and "-", max 63)');
const ipv4 = z.string().refine(isIPv4, 'must be an IPv4 address (four octets 0-255, no leading zeros)');

function intRange(min: number, max: number) {
  const msg = `must be an integer between ${min} and ${max}`;
  return z.number().int(msg).min(min, msg).max(max, msg);
}

const portNumber = intRange(1, 65535);

const labelMap = z.record(
  z.string().refine(isLabelKey, 'invalid label key (`[prefix/]name`, name alnum with "-_." inside, max 63)'),
  z.string().refine(isLabelValue, 'must be a label value (empty or alnum with "-_." inside, max 63)'),
);
const nonEmptyLabelMap = labelMap.refine((m) => Object.keys(m).length > 0, 'must have at least one label');

export const ServicePortSchema = z.strictObject({
  port: portNumber,
  targetPort: portNumber.optional(),
  protocol: z.enum(['TCP', 'UDP']),
});

export const ServiceSpecSchema = z.strictObject({
  vip: ipv4,
  ports: z
    .array(ServicePortSchema)
    .min(1, 'must have at least one port')
    .superRefine((ports, ctx) => {
      const seen = new Map<string, number>();
      ports.forEach((p, i) => {
        const key = `${p.port}/${p.protocol}`;
        const first = seen.get(key);
        if (first === undefined) seen.set(key, i);
        else
          ctx.addIssue({
            code: 'custom',
            path: [i],
            message: `duplicate port ${key} (also ports[${first}])`,
          });
      });
    }),
  selector: nonEmptyLabelMap,
  export: z.boolean().optional(),
  affinity: z.enum(['local', 'remote', 'none']).optional(),
});

export const WorkloadSpecSchema = z.strictObject({
  address: ipv4,
  node: dnsLabel,
  labels: labelMap,
  identity: dnsLabel,
  weight: intRange(1, 1000).optional(),
});

export const RouteBackendSchema = z.strictObject({
  selector: nonEmptyLabelMap,
  weight: intRange(0, 10000),
});

export const RouteSpecSchema = z.strictObject({
  service: dnsLabel,
  backends: z
    .array(RouteBackendSchema)
    .min(1, 'must have at least one backend')
    .max(16, 'must have at most 16 backends')
    .refine((bs) => bs.some((b) => b.weight > 0), 'at least one backend must have weight > 0'),
});

export const AuthorizationPolicySpecSchema = z.strictObject({
  service: dnsLabel,
  action: z.enum(['ALLOW', 'DENY']),
  from: z.array(z.strictObject({ identity: dnsLabel })).min(1, 'must have at least one source'),
  // Empty would be ambiguous (no port or every port?): omit the field to match all ports.
  ports: z
    .array(portNumber)
    .min(1, 'must not be empty (omit it to match every port)')
    .superRefine((ports, ctx) => {
      ports.forEach((p, i) => {
        if (ports.indexOf(p) !== i)
          ctx.addIssue({ code: 'custom', path: [i], message: `duplicate port ${p}` });
      });
    })
    .optional(),
});

export type ServicePort = z.infer<typeof ServicePortSchema>;
export type ServiceSpec = z.infer<typeof ServiceSpecSchema>;
export type WorkloadSpec = z.infer<typeof WorkloadSpecSchema>;
export type RouteBackend = z.infer<typeof RouteBackendSchema>;
export type RouteSpec = z.infer<typeof RouteSpecSchema>;
export type AuthorizationPolicySpec = z.infer<typeof AuthorizationPolicySpecSchema>;

export const SPEC_SCHEMAS = {
  Service: ServiceSpecSchema,
  Workload: WorkloadSpecSchema,
  Route: RouteSpecSchema,
  AuthorizationPolicy: AuthorizationPolicySpecSchema,
} as const satisfies Record<Kind, z.ZodType>;

const namespaceField = dnsLabel.default(DEFAULT_NAMESPACE);

function resourceSchema<K extends Kind>(kind: K) {
  return z.strictObject({
    kind: z.literal(kind),
    namespace: namespaceField,
    name: dnsLabel,
    spec: SPEC_SCHEMAS[kind],
  });
}

/** Whole-resource schemas per kind (envelope + spec). */
export const RESOURCE_SCHEMAS = {
  Service: resourceSchema('Service'),
  Workload: resourceSchema('Workload'),
  Route: resourceSchema('Route'),
  AuthorizationPolicy: resourceSchema('AuthorizationPolicy'),
};

export type ServiceResource = z.infer<typeof RESOURCE_SCHEMAS.Service>;
export type WorkloadResource = z.infer<typeof RESOURCE_SCHEMAS.Workload>;
export type RouteResource = z.infer<typeof RESOURCE_SCHEMAS.Route>;
export type AuthorizationPolicyResource = z.infer<typeof RESOURCE_SCHEMAS.AuthorizationPolicy>;
export type TypedResource = ServiceResource | WorkloadResource | RouteResource | AuthorizationPolicyResource;

// Used when the kind is missing or unknown, so the other fields still get checked.
const envelopeSchema = z.strictObject({
  kind: z.unknown(),
  namespace: namespaceField,
  name: dnsLabel,
  spec: z.unknown(),
});
const refSchema = z.strictObject({ kind: z.unknown(), namespace: namespaceField, name: dnsLabel });

export function isKind(kind: unknown): kind is Kind {
  return typeof kind === 'string' && (KINDS as readonly string[]).includes(kind);
}

const KIND_MESSAGE = `must be one of ${KINDS.join(', ')}`;

/** `prefix` + zod path: identifiers as `.a`, indexes as `[0]`, other keys as `["a.b/c"]`. */
export function formatPath(prefix: string, segments: readonly PropertyKey[]): string {
  let out = prefix;
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_$][\w$]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return typeof v;
}

// Per-parse error map: only for issues whose schema carries no message of its own.
const humanError: z.core.$ZodErrorMap = (iss) => {
  if ((iss.code === 'invalid_type' || iss.code === 'invalid_value') && iss.input === undefined)
    return 'is required';
  switch (iss.code) {
    case 'invalid_type': {
      const expected =
        iss.expected === 'int' ? 'integer' : iss.expected === 'record' ? 'object' : iss.expected;
      const article = /^[aeiou]/.test(expected) ? 'an' : 'a';
      return `must be ${article} ${expected}, got ${typeName(iss.input)}`;
    }
    case 'invalid_value':
      return `must be one of ${iss.values.map((v) => String(v)).join(', ')}`;
    default:
      return undefined;
  }
};

type Detail = { path: string; message: string };

function issuesToDetails(issues: readonly z.core.$ZodIssue[], prefix: string, out: Detail[]): void {
  for (const iss of issues) {
    if (iss.code === 'unrecognized_keys') {
      for (const key of iss.keys)
        out.push({ path: formatPath(prefix, [...iss.path, key]), message: 'unknown field' });
    } else if (iss.code === 'invalid_key') {
      out.push({ path: formatPath(prefix, iss.path), message: iss.issues.map((i) => i.message).join('; ') });
    } else {
      out.push({ path: formatPath(prefix, iss.path), message: iss.message });
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// zod skips an own `__proto__` key (JSON.parse creates one) instead of rejecting it.
// Depth-capped: no valid resource nests deeper than 5, and zod rejects what lies below.
function protoKeys(value: unknown, segments: PropertyKey[], prefix: string, out: Detail[]): void {
  if (typeof value !== 'object' || value === null || segments.length > 16) return;
  if (Object.hasOwn(value, '__proto__')) {
    out.push({ path: formatPath(prefix, [...segments, '__proto__']), message: 'forbidden field' });
  }
  for (const [k, v] of Object.entries(value))
    protoKeys(v, [...segments, Array.isArray(value) ? Number(k) : k], prefix, out);
}

function fail(details: Detail[], what: string): never {
  const first = details[0]!;
  const more = details.length > 1 ? ` (and ${details.length - 1} more)` : '';
  throw new ValidationError(`invalid ${what}: ${first.path || '(root)'} ${first.message}${more}`, details);
}

/**
 * Validates one resource as an operator wrote it. Throws ValidationError with
 * every problem found (paths prefixed with `path`); returns the normalized
 * resource (namespace defaulted).
 */
export function parseResource(input: unknown, path = ''): Resource {
  if (!isPlainObject(input))
    fail([{ path, message: `must be an object, got ${typeName(input)}` }], 'resource');
  const details: Detail[] = [];
  protoKeys(input, [], path, details);
  if (isKind(input.kind)) {
    const r = RESOURCE_SCHEMAS[input.kind].safeParse(input, { error: humanError });
    if (r.success && details.length === 0) return r.data as Resource;
    if (r.success) fail(details, 'resource');
    issuesToDetails(r.error.issues, path, details);
  } else {
    details.push({ path: formatPath(path, ['kind']), message: kindProblem(input.kind) });
    const r = envelopeSchema.safeParse(input, { error: humanError });
    if (!r.success) issuesToDetails(r.error.issues, path, details);
  }
  fail(details, 'resource');
}

function kindProblem(kind: unknown): string {
  if (kind === undefined) return `is required; ${KIND_MESSAGE}`;
  return `unknown kind ${JSON.stringify(kind)}; ${KIND_MESSAGE}`;
}

/** Validates a resource reference (for deletes): `{kind, namespace?, name}`, strict. */
export function parseResourceRef(input: unknown, path = ''): ResourceRef {
  if (!isPlainObject(input))
    fail([{ path, message: `must be an object, got ${typeName(input)}` }], 'reference');
  const details: Detail[] = [];
  protoKeys(input, [], path, details);
  if (!isKind(input.kind))
    details.push({ path: formatPath(path, ['kind']), message: kindProblem(input.kind) });
  const r = refSchema.safeParse(input, { error: humanError });
  if (!r.success) issuesToDetails(r.error.issues, path, details);
  if (details.length > 0 || !r.success) fail(details, 'reference');
  return { kind: r.data.kind as Kind, namespace: r.data.namespace, name: r.data.name };
}

/** Validates a spec of a known kind; `path` is the spec's own path (e.g. `apply[0].spec`). */
export function parseSpec(kind: string, spec: unknown, path = 'spec'): Record<string, unknown> {
  if (!isKind(kind))
    fail([{ path, message: `unknown kind ${JSON.stringify(kind)}; ${KIND_MESSAGE}` }], 'spec');
  const details: Detail[] = [];
  protoKeys(spec, [], path, details);
  const r = SPEC_SCHEMAS[kind].safeParse(spec, { error: humanError });
  if (r.success && details.length === 0) return r.data as Record<string, unknown>;
  if (r.success) fail(details, 'spec');
  issuesToDetails(r.error.issues, path, details);
  fail(details, 'spec');
}
