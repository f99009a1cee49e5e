/**
 * `--name=value` / `--name value` / `--flag` arguments with numeric defaults.
 * Unknown names are an error, so a typo never silently runs the default.
 */
export function parseArgs<T extends Record<string, number | boolean>>(
  argv: readonly string[],
  defaults: T,
): T {
  const out: Record<string, number | boolean> = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`unexpected argument ${arg}`);
    const key = m[1]!.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    if (!(key in defaults)) {
      const known = Object.keys(defaults).map(
        (k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
      );
      throw new Error(`unknown option ${arg} (known: ${known.join(', ')})`);
    }
    if (typeof defaults[key] === 'boolean') {
      out[key] = m[2] === undefined ? true : m[2] !== 'false';
      continue;
    }
    const raw = m[2] ?? argv[++i];
    const n = Number(raw);
    if (raw === undefined || raw === '' || !Number.isFinite(n)) throw new Error(`${arg} needs a number`);
    out[key] = n;
  }
  return out as T;
}
