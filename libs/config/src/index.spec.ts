import { z } from 'zod';
import { ConfigError, clusterEnv, intEnv, parseEnv, redactUrl, urlEnv } from './index';

const Schema = z.object({
  PORT: intEnv('PORT', 1, 65535).default(8080),
  DB: urlEnv('DB', ['postgres:']).optional(),
  MESH_CLUSTER: clusterEnv,
});

describe('parseEnv', () => {
  it('applies defaults and treats empty strings as unset', () => {
    expect(parseEnv(Schema, { PORT: '', MESH_CLUSTER: '' })).toEqual({ PORT: 8080, MESH_CLUSTER: 'local' });
  });

  it('names every bad variable in one ConfigError', () => {
    const err = (() => {
      try {
        parseEnv(Schema, { PORT: '70000', DB: 'mysql://x', MESH_CLUSTER: 'Bad_Name' });
      } catch (e) {
        return e;
      }
    })() as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.problems).toEqual([
      'PORT must be an integer between 1 and 65535',
      'DB must be a postgres:// URL',
      'MESH_CLUSTER must be a DNS-1123 label',
    ]);
    expect(err.message).toContain('  - PORT must be');
  });

  it('accepts comma-separated server lists for URL variables', () => {
    const S = z.object({ NATS_URL: urlEnv('NATS_URL', ['nats:']) });
    expect(parseEnv(S, { NATS_URL: 'nats://127.0.0.1:4222, nats://127.0.0.2:4222' }).NATS_URL).toContain(',');
    expect(() => parseEnv(S, { NATS_URL: 'nats://127.0.0.1:4222,nope' })).toThrow(ConfigError);
  });
});

describe('redactUrl', () => {
  it('hides passwords, keeps the rest, and never echoes unparseable input', () => {
    expect(redactUrl('postgres://app:secret@127.0.0.1:5432/mesh')).toBe(
      'postgres://app:***@127.0.0.1:5432/mesh',
    );
    expect(redactUrl('nats://127.0.0.1:4222,nats://u:p@127.0.0.2:4222')).toBe(
      'nats://127.0.0.1:4222,nats://u:***@127.0.0.2:4222',
    );
    expect(redactUrl('::secret::')).toBe('(unparseable url)');
  });
});
