import { KINDS, type Kind } from '@meshplane/domain';
import { UsageError } from './errors';

/** Accepted spellings per kind, matched case-insensitively (kubectl-style short names). */
export const KIND_ALIASES: Record<Kind, readonly string[]> = {
  Service: ['service', 'services', 'svc'],
  Workload: ['workload', 'workloads', 'wl'],
  Route: ['route', 'routes', 'rt'],
  AuthorizationPolicy: ['authorizationpolicy', 'authorizationpolicies', 'authz', 'policy', 'policies', 'ap'],
};

const BY_ALIAS = new Map<string, Kind>();
for (const kind of KINDS) for (const alias of KIND_ALIASES[kind]) BY_ALIAS.set(alias, kind);

export function kindsHelp(): string {
  return KINDS.map((k) => `${k} (${KIND_ALIASES[k].filter((a) => a !== k.toLowerCase()).join(', ')})`).join(
    ', ',
  );
}

/** The canonical kind for `input` (any case, plural or short name), or undefined. */
export function lookupKind(input: string): Kind | undefined {
  return BY_ALIAS.get(input.trim().toLowerCase());
}

/** Like lookupKind, but a usage error (exit 2) naming the known kinds when nothing matches. */
export function resolveKind(input: string): Kind {
  const kind = lookupKind(input);
  if (!kind) throw new UsageError(`unknown kind "${input}"; known kinds: ${kindsHelp()}`);
  return kind;
}
