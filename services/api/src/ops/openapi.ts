import { RESOURCE_SCHEMAS } from '@meshplane/domain';
import { z } from 'zod';
import { ChangeRequestSchema, RollbackRequestSchema } from '../changes/changes.schemas';
import { CreateTokenSchema } from '../tokens/tokens.controller';

/*
 * OpenAPI 3.1 (whose schemas are JSON Schema 2020-12): request bodies and
 * resources come from the same zod schemas that validate them, so the document
 * cannot drift from the code; responses are described by hand, briefly.
 */

type Json = Record<string, unknown>;

function schemaOf(s: z.ZodType): Json {
  const { $schema: _, ...rest } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Json;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json) => ({ 'application/json': { schema } });
const ok = (description: string, schema: Json = { type: 'object' }) => ({
  description,
  content: json(schema),
});
const errors = (...codes: number[]) =>
  Object.fromEntries(
    codes.map((c) => [String(c), { description: ERROR_TEXT[c], content: json(ref('Error')) }]),
  );
const ERROR_TEXT: Record<number, string> = {
  400: 'invalid input; `details` name the field paths',
  401: 'missing, unknown or revoked token',
  403: 'the token role is too low',
  404: 'no such resource or revision',
  409: 'expected revision or version conflict, or idempotency key reused; `headRevision` is the current head',
  413: 'body over 1 MiB',
  415: 'body is not application/json',
  503: 'a backing service is unreachable (NATS for node status); the rest of the API keeps working',
};
const q = (name: string, description: string, schema: Json = { type: 'string' }, required = false) => ({
  name,
  in: 'query',
  required,
  description,
  schema,
});
const p = (name: string) => ({ name, in: 'path', required: true, schema: { type: 'string' } });
const int = { type: 'integer', minimum: 0 };
const time = { type: 'string', format: 'date-time' };
const nullable = (schema: Json) => ({ oneOf: [schema, { type: 'null' }] });
const object = (properties: Json) => ({ type: 'object', required: Object.keys(properties), properties });
const idemHeader = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description: 'repeat-safe writes: the same key and body return the original result',
  schema: { type: 'string', maxLength: 255 },
};
const secured = (role: string) => ({ security: [{ bearer: [] }], 'x-meshplane-role': role });

let cached: Json | undefined;

/** Built once: the schemas do not change while the process runs. */
export function openApiDocument(): Json {
  cached ??= buildDocument();
  return cached;
}

function buildDocument(): Json {
  const resourceRef = [p('kind'), p('namespace'), p('name')];
  return {
    openapi: '3.1.0',
    info: {
      title: 'Meshplane API',
      version: '1',
      description: 'Audited, revisioned control plane of the eBPF mesh.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message', 'details'],
              properties: {
                code: { type: 'string' },
                message: { type: 'string' },
                details: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: { path: { type: 'string' }, message: { type: 'string' } },
                  },
                },
                headRevision: { type: 'integer' },
              },
            },
          },
        },
        Resource: { oneOf: Object.keys(RESOURCE_SCHEMAS).map((k) => ref(k)) },
        ...Object.fromEntries(
          Object.entries(RESOURCE_SCHEMAS).map(([k, s]) => [k, schemaOf(s as unknown as z.ZodType)]),
        ),
        ChangeRequest: {
          ...schemaOf(ChangeRequestSchema),
          properties: {
            ...(schemaOf(ChangeRequestSchema).properties as Json),
            apply: { type: 'array', items: ref('Resource') },
            delete: {
              type: 'array',
              items: {
                type: 'object',
                required: ['kind', 'name'],
                additionalProperties: false,
                properties: {
                  kind: { type: 'string' },
                  namespace: { type: 'string' },
                  name: { type: 'string' },
                },
              },
            },
          },
        },
        RollbackRequest: schemaOf(RollbackRequestSchema),
        TokenRequest: schemaOf(CreateTokenSchema),
        Written: {
          type: 'object',
          properties: {
            revision: int,
            changeId: { type: 'string' },
            hash: { type: 'string' },
            events: { type: 'array' },
          },
        },
        Unchanged: { type: 'object', properties: { revision: int, unchanged: { const: true } } },
        NodeList: object({
          cluster: { type: 'string' },
          headRevision: int,
          offlineAfterMs: int,
          items: { type: 'array', items: ref('Node') },
        }),
        Node: object({
          node: { type: 'string' },
          state: {
            enum: ['SYNCED', 'STALE', 'ERROR', 'OFFLINE'],
            description:
              'OFFLINE: heartbeat older than offlineAfterMs; ERROR: behind with lastError (or ahead of the head); STALE: behind; SYNCED: at the head',
          },
          appliedRevision: int,
          lagRevisions: { type: 'integer', description: 'headRevision - appliedRevision' },
          lagSeconds: nullable({
            type: 'number',
            description: 'since the first revision the node has not applied was committed; 0 when synced',
          }),
          lastError: nullable({ type: 'string' }),
          failedRevision: nullable(int),
          lastErrorAt: nullable(time),
          heartbeatAt: time,
          heartbeatAgeSeconds: { type: 'number' },
          appliedAt: nullable(time),
          applyDurationMs: nullable({ type: 'number' }),
          ops: int,
          agentVersion: { type: 'string' },
          agentState: nullable({ type: 'string' }),
          message: nullable({
            type: 'string',
            description: 'why the node is in its state; null when SYNCED',
          }),
          dataplane: nullable({
            type: 'object',
            description:
              "the agent's data-plane facts: backend kind, pin dir, programs attached, full-pass repairs",
          }),
        }),
        Propagation: object({
          revision: int,
          committedAt: time,
          publishedAt: nullable({ ...time, description: 'JetStream timestamp; null if not published (yet)' }),
          publishLatencyMs: nullable({ type: 'number' }),
          nodes: {
            type: 'array',
            items: object({
              node: { type: 'string' },
              state: {
                enum: ['APPLIED', 'PENDING', 'ERROR', 'OFFLINE'],
                description: 'APPLIED with appliedAt null means applied, time unknown (see detail)',
              },
              appliedRevision: int,
              appliedAt: nullable(time),
              latencyMs: nullable({ type: 'number', description: 'appliedAt - committedAt' }),
              receivedAt: nullable({
                ...time,
                description: 'when the agent received the revision; null when coalesced with others',
              }),
              detail: nullable({ type: 'string' }),
            }),
          },
        }),
      },
    },
    paths: {
      '/v1/changes': {
        post: {
          ...secured('operator'),
          summary: 'Apply and delete resources as one revision',
          parameters: [idemHeader],
          requestBody: { required: true, content: json(ref('ChangeRequest')) },
          responses: {
            201: ok('new revision (header Idempotent-Replayed: true on a replay)', ref('Written')),
            200: ok('nothing changed', ref('Unchanged')),
            ...errors(400, 401, 403, 409, 413, 415),
          },
        },
      },
      '/v1/rollback': {
        post: {
          ...secured('operator'),
          summary: 'Append a revision that restores the state of an earlier one',
          parameters: [idemHeader],
          requestBody: { required: true, content: json(ref('RollbackRequest')) },
          responses: {
            201: ok('new revision with restoredFromRevision', ref('Written')),
            200: ok('dry run (diff) or nothing to change'),
            ...errors(400, 401, 403, 404, 409, 413, 415),
          },
        },
      },
      '/v1/resources': {
        get: {
          ...secured('viewer'),
          summary: 'Resources at the head or at a revision',
          parameters: [
            q('kind', 'filter by kind'),
            q('namespace', 'filter by namespace'),
            q('revision', 'past revision', int),
          ],
          responses: { 200: ok('{ revision, items }'), ...errors(400, 401, 404) },
        },
      },
      '/v1/resources/{kind}/{namespace}/{name}': {
        get: {
          ...secured('viewer'),
          summary: 'One resource at the head or at a revision',
          parameters: [...resourceRef, q('revision', 'past revision', int)],
          responses: { 200: ok('{ revision, resource }'), ...errors(400, 401, 404) },
        },
      },
      '/v1/resources/{kind}/{namespace}/{name}/history': {
        get: {
          ...secured('viewer'),
          summary: 'Every event of one resource, with actor and reason',
          parameters: resourceRef,
          responses: { 200: ok('{ items }'), ...errors(400, 401, 404) },
        },
      },
      '/v1/revisions': {
        get: {
          ...secured('viewer'),
          summary: 'Change set headers in revision order',
          parameters: [q('from', 'first revision (default 1)', int), q('limit', '1-1000 (default 100)', int)],
          responses: { 200: ok('{ headRevision, items, next }'), ...errors(400, 401) },
        },
      },
      '/v1/revisions/{rev}': {
        get: {
          ...secured('viewer'),
          summary: 'One change set with its events',
          parameters: [p('rev')],
          responses: { 200: ok('change set'), ...errors(400, 401, 404) },
        },
      },
      '/v1/revisions/{rev}/propagation': {
        get: {
          ...secured('viewer'),
          summary: 'Committed, published and applied times of one revision on every node',
          parameters: [p('rev')],
          responses: { 200: ok('propagation', ref('Propagation')), ...errors(400, 401, 404, 503) },
        },
      },
      '/v1/nodes': {
        get: {
          ...secured('viewer'),
          summary: 'Every node with its applied revision and sync state against the head',
          responses: { 200: ok('nodes', ref('NodeList')), ...errors(401, 503) },
        },
      },
      '/v1/diff': {
        get: {
          ...secured('viewer'),
          summary: 'Added, removed and changed resources between two revisions',
          parameters: [q('from', 'revision A', int, true), q('to', 'revision B', int, true)],
          responses: { 200: ok('{ from, to, added, removed, changed }'), ...errors(400, 401, 404) },
        },
      },
      '/v1/snapshot': {
        get: {
          ...secured('viewer'),
          summary: 'Current state with its revision and hash (agent start-up)',
          responses: { 200: ok('{ cluster, revision, hash, resources }'), ...errors(401) },
        },
      },
      '/v1/audit': {
        get: {
          ...secured('viewer'),
          summary: 'Change sets and token create/revoke, in time order',
          parameters: [
            q('actor', 'token name'),
            q('kind', 'changes touching this kind'),
            q('namespace', 'changes touching this namespace'),
            q('name', 'changes touching this name'),
            q('since', 'ISO-8601'),
            q('until', 'ISO-8601'),
            q('type', 'change | token'),
            q('limit', '1-1000 (default 100)', int),
          ],
          responses: { 200: ok('{ items } with type change | token'), ...errors(400, 401) },
        },
      },
      '/v1/audit/verify': {
        get: {
          ...secured('viewer'),
          summary: 'Recompute the hash chain',
          parameters: [q('from', 'first revision', int), q('to', 'last revision', int)],
          responses: {
            200: ok('{ ok, headRevision, headHash } or { ok: false, firstBadRevision }'),
            ...errors(401),
          },
        },
      },
      '/v1/tokens': {
        get: {
          ...secured('admin'),
          summary: 'List tokens (no secrets)',
          responses: { 200: ok('{ items }'), ...errors(401, 403) },
        },
        post: {
          ...secured('admin'),
          summary: 'Create a token; the plaintext is returned once',
          requestBody: { required: true, content: json(ref('TokenRequest')) },
          responses: { 201: ok('token with plaintext `token`'), ...errors(400, 401, 403, 409, 415) },
        },
      },
      '/v1/tokens/{id}': {
        delete: {
          ...secured('admin'),
          summary: 'Revoke a token',
          parameters: [p('id')],
          responses: { 200: ok('revoked token'), ...errors(401, 403, 404) },
        },
      },
      '/healthz': { get: { summary: 'Liveness', responses: { 200: ok('{ status: ok }') } } },
      '/readyz': {
        get: {
          summary: 'Postgres reachable',
          responses: { 200: ok('ready'), 503: ok('not ready', ref('Error')) },
        },
      },
      '/metrics': {
        get: { summary: 'Prometheus text', responses: { 200: { description: 'text/plain; version=0.0.4' } } },
      },
      '/v1/openapi.json': { get: { summary: 'This document', responses: { 200: ok('OpenAPI 3.1') } } },
    },
  };
}
