/**
 * Typed errors shared by every layer; the API maps them to HTTP in one filter.
 * `details` carries field paths so callers can point at the offending input.
 */
export interface ErrorDetail {
  path: string;
  message: string;
}

export abstract class MeshError extends Error {
  abstract readonly code: string;
  constructor(
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends MeshError {
  readonly code = 'INVALID';
}

export class NotFoundError extends MeshError {
  readonly code = 'NOT_FOUND';
}

/** Optimistic-concurrency or ownership conflict; carries the head the caller should retry against. */
export class ConflictError extends MeshError {
  readonly code = 'CONFLICT';
  constructor(
    message: string,
    readonly headRevision: number,
    details: ErrorDetail[] = [],
  ) {
    super(message, details);
  }
}

export class UnauthorizedError extends MeshError {
  readonly code = 'UNAUTHENTICATED';
}

export class ForbiddenError extends MeshError {
  readonly code = 'FORBIDDEN';
}
