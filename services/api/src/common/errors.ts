import { MeshError } from '@meshplane/domain';

/* HTTP-level errors that have no counterpart in the domain. */

export class PayloadTooLargeError extends MeshError {
  readonly code = 'PAYLOAD_TOO_LARGE';
}

export class UnsupportedMediaTypeError extends MeshError {
  readonly code = 'UNSUPPORTED_MEDIA_TYPE';
}

export class MalformedJsonError extends MeshError {
  readonly code = 'MALFORMED_JSON';
}

export class UnavailableError extends MeshError {
  readonly code = 'UNAVAILABLE';
}

/** HTTP status per error code; anything else is a 500. */
export const STATUS_BY_CODE: Record<string, number> = {
  INVALID: 400,
  MALFORMED_JSON: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL: 500,
  UNAVAILABLE: 503,
};
