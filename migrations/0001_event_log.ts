import { type Kysely, sql } from 'kysely';

/**
 * The log: change_sets (one row per revision) and events (N rows per revision),
 * a one-row head that serializes appends, the current-state projection and
 * snapshots. The log tables are append-only, enforced here, in the database.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE mesh_head (
      id boolean PRIMARY KEY DEFAULT true CHECK (id),
      revision bigint NOT NULL,
      hash text NOT NULL
    );
    INSERT INTO mesh_head (id, revision, hash) VALUES (true, 0, repeat('0', 64));

    CREATE TABLE change_sets (
      revision bigint PRIMARY KEY CHECK (revision > 0),
      change_id uuid NOT NULL UNIQUE,
      cluster text NOT NULL,
      actor text NOT NULL CHECK (length(btrim(actor)) > 0),
      reason text NOT NULL CHECK (length(btrim(reason)) > 0),
      request_id text,
      idempotency_key text,
      idempotency_fingerprint text,
      trace_context text,
      restored_from_revision bigint REFERENCES change_sets (revision),
      metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
      event_count integer NOT NULL CHECK (event_count > 0),
      created_at timestamptz NOT NULL,
      prev_hash text NOT NULL,
      hash text NOT NULL,
      CONSTRAINT change_sets_idempotency UNIQUE (actor, idempotency_key)
    );
    CREATE INDEX change_sets_created_at ON change_sets (created_at);
    CREATE INDEX change_sets_actor ON change_sets (actor, revision);

    CREATE TABLE events (
      revision bigint NOT NULL REFERENCES change_sets (revision),
      seq integer NOT NULL CHECK (seq >= 0),
      kind text NOT NULL,
      namespace text NOT NULL,
      name text NOT NULL,
      op text NOT NULL CHECK (op IN ('put', 'delete')),
      spec jsonb,
      prev_version bigint,
      origin text,
      PRIMARY KEY (revision, seq),
      CHECK ((op = 'put') = (spec IS NOT NULL))
    );
    CREATE INDEX events_resource ON events (kind, namespace, name, revision);

    CREATE TABLE resources (
      kind text NOT NULL,
      namespace text NOT NULL,
      name text NOT NULL,
      spec jsonb NOT NULL,
      version bigint NOT NULL,
      origin text,
      PRIMARY KEY (kind, namespace, name)
    );

    CREATE TABLE snapshots (
      revision bigint PRIMARY KEY REFERENCES change_sets (revision),
      change_set_hash text NOT NULL,
      content_hash text NOT NULL,
      resource_count integer NOT NULL,
      content text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE FUNCTION mesh_reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      RAISE EXCEPTION 'meshplane: % on % is not allowed: the log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
    END
    $fn$;

    CREATE TRIGGER change_sets_append_only BEFORE UPDATE OR DELETE ON change_sets
      FOR EACH ROW EXECUTE FUNCTION mesh_reject_mutation();
    CREATE TRIGGER change_sets_no_truncate BEFORE TRUNCATE ON change_sets
      FOR EACH STATEMENT EXECUTE FUNCTION mesh_reject_mutation();
    CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
      FOR EACH ROW EXECUTE FUNCTION mesh_reject_mutation();
    CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
      FOR EACH STATEMENT EXECUTE FUNCTION mesh_reject_mutation();
  `.execute(db);

  // The application role: may append and read the log, never rewrite it.
  await sql`
    DO $do$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'meshplane_app') THEN
        CREATE ROLE meshplane_app NOLOGIN;
      END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL; -- another database's migration created it concurrently
    END
    $do$;
    GRANT SELECT, INSERT ON change_sets, events TO meshplane_app;
    GRANT SELECT, UPDATE ON mesh_head TO meshplane_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON resources, snapshots TO meshplane_app;
  `.execute(db);
}
