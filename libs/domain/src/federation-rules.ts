import { ConflictError, type ErrorDetail, ValidationError } from './errors';
import type { Change } from './events';
import { EXPORTED_KINDS, globalKeyOf, isClusterName, splitImportedName } from './federation';
import { type ResourceRef, refKey, type StoredResource } from './resource';
import { parseResource } from './schemas';
import { overlay, type StateView, vipKeys } from './validate';

/*
 * Who may write what (federation; the model is described in federation.ts):
 * local writers may not touch what another cluster owns, and an import from a
 * peer may write only that peer's resources.
 */

const show = (r: ResourceRef) => `${r.kind} ${r.namespace}/${r.name}`;

/** The cluster that owns what a local change touches, or undefined when it is local. */
function ownerOf(current: StateView | undefined, c: Change): string | undefined {
  const existing = current?.get(c)?.origin;
  if (existing !== undefined) return existing;
  if (c.op === 'put' && c.origin !== undefined) return c.origin;
  return splitImportedName(c.name)?.origin;
}

/**
 * Details for every local change that touches what another cluster owns (a
 * dotted name, a resource with an origin, a put carrying an origin).
 */
export function ownershipConflicts(
  current: StateView | undefined,
  changes: readonly Change[],
  pathOf: (index: number) => string,
): ErrorDetail[] {
  const out: ErrorDetail[] = [];
  changes.forEach((c, i) => {
    const owner = ownerOf(current, c);
    if (owner === undefined) return;
    out.push({
      path: `${pathOf(i)}.name`,
      message: `${show(c)} is owned by cluster ${owner} (imported by federation); change it in cluster ${owner}`,
    });
  });
  return out;
}

/**
 * For a raw write request item (before schema checks, which would call a dotted
 * name merely invalid): the conflict detail when it names an imported resource.
 */
export function ownershipOfInput(input: unknown, path: string): ErrorDetail | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const { kind, namespace, name } = input as Record<string, unknown>;
  if (typeof name !== 'string') return undefined;
  const split = splitImportedName(name);
  if (!split || !isClusterName(split.origin)) return undefined;
  const ns = typeof namespace === 'string' ? namespace : 'default';
  return {
    path: `${path}.name`,
    message: `${String(kind)} ${ns}/${name} is owned by cluster ${split.origin} (imported by federation); change it in cluster ${split.origin}`,
  };
}

export function ownershipError(details: ErrorDetail[], headRevision: number): ConflictError {
  const more = details.length > 1 ? ` (and ${details.length - 1} more)` : '';
  return new ConflictError(`${details[0]!.message}${more}`, headRevision, details);
}

/**
 * Validates an import change set from `origin` (the importer's `validate`):
 * only Services and Workloads named `<label>.<origin>` carrying origin
 * `origin`, never a resource another cluster (or this one) owns; specs per
 * schema; VIPs unique except within one global service.
 */
export function validateImport(
  current: StateView,
  changes: readonly Change[],
  origin: string,
  pathOf: (index: number) => string = (i) => `changes[${i}]`,
): void {
  const conflicts: ErrorDetail[] = [];
  const details: ErrorDetail[] = [];
  const seen = new Set<string>();
  changes.forEach((c, i) => {
    const path = pathOf(i);
    const split = splitImportedName(c.name);
    const existing = current.get(c);
    const carried = c.op === 'put' ? c.origin : origin;
    if (split?.origin !== origin || carried !== origin || (existing && existing.origin !== origin)) {
      const owner = existing ? (existing.origin ?? 'local') : (split?.origin ?? 'local');
      conflicts.push({
        path: `${path}.name`,
        message: `${show(c)} is not an import from ${origin} (owner: ${owner}); an import from ${origin} writes only <name>.${origin} with origin ${origin}`,
      });
      return;
    }
    if (seen.has(refKey(c))) details.push({ path, message: `${show(c)} appears more than once` });
    seen.add(refKey(c));
    if (!EXPORTED_KINDS.includes(c.kind)) {
      details.push({ path: `${path}.kind`, message: `an import carries only ${EXPORTED_KINDS.join(', ')}` });
      return;
    }
    if (c.op === 'put') {
      try {
        parseResource({ kind: c.kind, namespace: c.namespace, name: split.name, spec: c.spec }, path);
      } catch (e) {
        if (!(e instanceof ValidationError)) throw e;
        details.push(...e.details);
      }
    }
  });
  if (conflicts.length > 0) throw ownershipError(conflicts, current.revision ?? 0);

  // VIPs: the imported Services may share them only with members of their global service.
  const view = overlay(current, changes);
  changes.forEach((c, i) => {
    if (c.op !== 'put' || c.kind !== 'Service') return;
    const group = globalKeyOf(c);
    vipKeys(c.spec).forEach((vk, j) => {
      for (const other of servicesUsing(view, vk)) {
        if (refKey(other) === refKey(c) || globalKeyOf(other) === group) continue;
        details.push({
          path: `${pathOf(i)}.spec.ports[${j}]`,
          message: `${show(c)} and ${show(other)} both use ${vk} (only one global service may use a VIP)`,
        });
      }
    });
  });
  if (details.length > 0) {
    const more = details.length > 1 ? ` (and ${details.length - 1} more)` : '';
    throw new ValidationError(
      `invalid import from ${origin}: ${details[0]!.path} ${details[0]!.message}${more}`,
      details,
    );
  }
}

function servicesUsing(view: StateView, vk: string): Iterable<StoredResource> {
  if (view.servicesUsing) return view.servicesUsing(vk);
  const out: StoredResource[] = [];
  for (const s of view.list('Service')) if (vipKeys(s.spec).includes(vk)) out.push(s);
  return out;
}
