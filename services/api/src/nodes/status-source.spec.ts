import { redactNatsUrls } from './status-source';

describe('redactNatsUrls', () => {
  test('error bodies and logs never carry NATS credentials', () => {
    expect(redactNatsUrls('nats://127.0.0.1:4222')).toBe('nats://127.0.0.1:4222');
    expect(redactNatsUrls('nats://app:s3cret@127.0.0.1:4222, tls://tok3n@127.0.0.2:4222')).toBe(
      'nats://***:***@127.0.0.1:4222,tls://***@127.0.0.2:4222',
    );
    expect(redactNatsUrls('not a url')).toBe('(unparseable url)');
  });
});
