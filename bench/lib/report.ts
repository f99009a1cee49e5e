/** The ending every bench shares: findings appended to the details, the file written, the summary printed. */
import os from 'node:os';
import { type BenchReport, formatTable, meetsTarget, type Target, writeResults } from './results';
import { round } from './stats';
import { formatMs } from './timing';

/**
 * Ends `details` with the load average now and then the findings computed from the numbers (the
 * findings may read anything already in `details`), so every results file ends its details alike.
 */
export function closeDetails(
  metrics: Record<string, number>,
  details: Record<string, unknown>,
  findings: (m: Record<string, number>, d: Record<string, unknown>) => string[],
): void {
  details.load_average_at_end = os.loadavg().map((x) => round(x, 3));
  details.findings = findings(metrics, details);
}

/** One finding per metric that misses its target: `name MISS (value vs op threshold)` and `tail`. */
export function targetMisses(
  metrics: Record<string, number>,
  targets: Record<string, Target>,
  tail: string,
): string[] {
  const out: string[] = [];
  for (const [name, t] of Object.entries(targets)) {
    const value = metrics[name];
    if (value !== undefined && !meetsTarget(value, t))
      out.push(`${name} MISS (${value} vs ${t.op} ${t.threshold})${tail}`);
  }
  return out;
}

/** Writes the results file, then prints the heading, the metric table, the findings and where it went. */
export function writeAndPrint(report: BenchReport, heading: string): string {
  const file = writeResults(report);
  process.stdout.write(`\n${heading}\n\n${formatTable(report.metrics, report.targets)}\n\n`);
  const findings = (report.details?.findings as string[] | undefined) ?? [];
  for (const f of findings) process.stdout.write(`- ${f}\n`);
  process.stdout.write(`\nwritten ${file} in ${formatMs(report.durationMs)}\n`);
  return file;
}
