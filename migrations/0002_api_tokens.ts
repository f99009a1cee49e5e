import { type Kysely, sql } from 'kysely';

/**
 * API tokens (stored as SHA-256 of the secret, never the secret) and the
 * append-only audit of token creation and revocation. The audit table reuses
 * the log's `mesh_reject_mutation` trigger: who could act is as immutable as
 * what they did.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE api_tokens (
      id uuid PRIMARY KEY,
      name text NOT NULL CHECK (length(btrim(name)) > 0),
      role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
      token_hash text NOT NULL UNIQUE,
      created_at timestamptz NOT NULL DEFAULT now(),
      created_by text NOT NULL,
      revoked_at timestamptz,
      revoked_by text
    );
    -- The name is the actor in the log, so two live tokens must not share one.
    CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

    CREATE TABLE api_token_audit (
      id bigserial PRIMARY KEY,
      at timestamptz NOT NULL DEFAULT clock_timestamp(),
      actor text NOT NULL,
      action text NOT NULL CHECK (action IN ('create', 'revoke')),
      token_id uuid NOT NULL REFERENCES api_tokens (id),
      token_name text NOT NULL,
      role text NOT NULL,
      request_id text
    );
    CREATE INDEX api_token_audit_at ON api_token_audit (at);

    CREATE TRIGGER api_token_audit_append_only BEFORE UPDATE OR DELETE ON api_token_audit
      FOR EACH ROW EXECUTE FUNCTION mesh_reject_mutation();
    CREATE TRIGGER api_token_audit_no_truncate BEFORE TRUNCATE ON api_token_audit
      FOR EACH STATEMENT EXECUTE FUNCTION mesh_reject_mutation();

    GRANT SELECT, INSERT, UPDATE ON api_tokens TO meshplane_app;
    GRANT SELECT, INSERT ON api_token_audit TO meshplane_app;
    GRANT USAGE ON SEQUENCE api_token_audit_id_seq TO meshplane_app;
  `.execute(db);
}
