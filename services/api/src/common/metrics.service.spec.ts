import { MetricsService } from './metrics.service';

test('renders counters, a cumulative histogram and escaped labels', () => {
  const m = new MetricsService();
  m.observeRequest('GET', '/v1/resources', 200, 0.003);
  m.observeRequest('GET', '/v1/resources', 200, 0.2);
  m.observeRequest('GET', 'a"b\\c', 404, 0.001);
  m.observeAppend('appended');
  const text = m.render({ headRevision: 7 });
  expect(text).toContain('meshplane_api_requests_total{method="GET",route="/v1/resources",status="200"} 2');
  expect(text).toContain('route="a\\"b\\\\c"');
  expect(text).toContain(
    'meshplane_api_request_duration_seconds_bucket{method="GET",route="/v1/resources",le="0.005"} 1',
  );
  expect(text).toContain(
    'meshplane_api_request_duration_seconds_bucket{method="GET",route="/v1/resources",le="0.25"} 2',
  );
  expect(text).toContain(
    'meshplane_api_request_duration_seconds_count{method="GET",route="/v1/resources"} 2',
  );
  expect(text).toContain('meshplane_api_appends_total{result="appended"} 1');
  expect(text.endsWith('meshplane_head_revision 7\n')).toBe(true);
});
