/*
 * Errors raised on the client side. Server and transport errors live in client.ts.
 *
 * Exit codes (as kubectl): 0 success; 1 the server refused, could not be
 * reached, or the input files are bad; 2 wrong usage (unknown command, bad
 * flag, missing --reason). `diff` keeps kubectl diff's meaning instead:
 * 0 no differences, 1 differences, 2 any error.
 */

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** The command line itself is wrong: exit 2, with a hint to --help. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A manifest could not be read or parsed; `location` is `file:line:col` or `file`. */
export class InputError extends Error {
  constructor(
    message: string,
    readonly location?: string,
  ) {
    super(message);
    this.name = 'InputError';
  }
}

/** A command ran fine but its outcome is a failure (verify found a broken chain, delete found nothing). */
export class CommandFailed extends Error {
  constructor(
    message: string,
    readonly exitCode = EXIT_FAILURE,
  ) {
    super(message);
    this.name = 'CommandFailed';
  }
}

/** Maps a request path (`apply[3].spec.vip`) to where it came from (`bookinfo.yaml:12, Service default/x`). */
export type Annotate = (path: string) => string | undefined;

const annotations = new WeakMap<object, Annotate>();

/** Attaches source locations to an error with field paths, for the error printer. */
export function annotateError<E>(err: E, annotate: Annotate): E {
  if (typeof err === 'object' && err !== null) annotations.set(err, annotate);
  return err;
}

export function annotationOf(err: unknown): Annotate | undefined {
  return typeof err === 'object' && err !== null ? annotations.get(err) : undefined;
}
