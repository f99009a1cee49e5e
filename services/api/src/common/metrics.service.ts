import { Injectable } from '@nestjs/common';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Histogram {
  labels: Record<string, string>;
  counts: number[];
  sum: number;
  count: number;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/**
 * A small Prometheus registry: request counts by route/method/status, a latency
 * histogram by route/method, append outcomes. Routes are the templates
 * (`/v1/resources/:kind/...`), never raw paths, so cardinality stays bounded.
 */
@Injectable()
export class MetricsService {
  private readonly requests = new Map<string, { labels: Record<string, string>; value: number }>();
  private readonly durations = new Map<string, Histogram>();
  private readonly appends = new Map<string, number>();

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status: String(status) };
    const key = labelText(labels);
    const c = this.requests.get(key);
    if (c) c.value++;
    else this.requests.set(key, { labels, value: 1 });

    const hLabels = { method, route };
    const hKey = labelText(hLabels);
    let h = this.durations.get(hKey);
    if (!h) {
      h = { labels: hLabels, counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.durations.set(hKey, h);
    }
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) h.counts[i]!++;
    });
    h.sum += seconds;
    h.count++;
  }

  observeAppend(result: 'appended' | 'replayed' | 'unchanged'): void {
    this.appends.set(result, (this.appends.get(result) ?? 0) + 1);
  }

  /** Prometheus text exposition format 0.0.4. */
  render(gauges: { headRevision?: number }): string {
    const out: string[] = [];
    out.push('# HELP meshplane_api_requests_total HTTP requests by route template, method and status.');
    out.push('# TYPE meshplane_api_requests_total counter');
    for (const { labels, value } of this.requests.values())
      out.push(`meshplane_api_requests_total${labelText(labels)} ${value}`);

    out.push(
      '# HELP meshplane_api_request_duration_seconds HTTP request latency by route template and method.',
    );
    out.push('# TYPE meshplane_api_request_duration_seconds histogram');
    for (const h of this.durations.values()) {
      for (const [i, b] of BUCKETS.entries()) {
        out.push(
          `meshplane_api_request_duration_seconds_bucket${labelText({ ...h.labels, le: String(b) })} ${h.counts[i]}`,
        );
      }
      out.push(
        `meshplane_api_request_duration_seconds_bucket${labelText({ ...h.labels, le: '+Inf' })} ${h.count}`,
      );
      out.push(`meshplane_api_request_duration_seconds_sum${labelText(h.labels)} ${h.sum}`);
      out.push(`meshplane_api_request_duration_seconds_count${labelText(h.labels)} ${h.count}`);
    }

    out.push(
      '# HELP meshplane_api_appends_total Change requests by outcome (appended, replayed, unchanged).',
    );
    out.push('# TYPE meshplane_api_appends_total counter');
    for (const [result, n] of this.appends)
      out.push(`meshplane_api_appends_total${labelText({ result })} ${n}`);

    if (gauges.headRevision !== undefined) {
      out.push('# HELP meshplane_head_revision The newest revision in the log.');
      out.push('# TYPE meshplane_head_revision gauge');
      out.push(`meshplane_head_revision ${gauges.headRevision}`);
    }
    return `${out.join('\n')}\n`;
  }
}
