"""audit: the hash-chained, append-only audit trail (schema `audit`)

Revision ID: 0002_audit
Revises: 0001

The schema and table belong to the migrating role (the owner). The application role gets only
USAGE on the schema, SELECT on the table and EXECUTE on `audit.append_event`, a SECURITY DEFINER
function: the app can append through it and read, never update, delete, truncate or insert
directly, and it cannot disable the triggers because it does not own the table.

The app role's name is read from the setting `sirena.app_role` (e.g. `ALTER DATABASE sirena SET
sirena.app_role = 'myapp'`, or PGOPTIONS='-c sirena.app_role=myapp'), default `sirena_app`.

The canonical serialization hashed here is reproduced byte for byte by audit/chain.py; change
both together, under a new version tag, or every existing event stops verifying.
"""

from __future__ import annotations

from alembic import op

revision = "0002_audit"
down_revision = "0001"
branch_labels = None
depends_on = None

# pg_advisory_xact_lock key that serializes appends ("SIRAUD" in ASCII).
APPEND_LOCK_KEY = 0x534952415544

SCHEMA = r"""
DO $$ BEGIN
  IF pg_encoding_to_char((SELECT encoding FROM pg_database WHERE datname = current_database())) <> 'UTF8' THEN
    RAISE EXCEPTION 'the audit trail needs a UTF8 database (its hashes are over UTF-8 text)';
  END IF;
END $$;

CREATE SCHEMA audit;
REVOKE ALL ON SCHEMA audit FROM PUBLIC;

CREATE TABLE audit.events (
  seq                bigint      PRIMARY KEY,
  at                 timestamptz NOT NULL,
  actor_kind         text        NOT NULL,
  actor_name         text        NOT NULL,
  actor_operator_id  bigint,
  actor_token_id     bigint,
  action             text        NOT NULL,
  subject_type       text,
  subject_id         text,
  payload            jsonb       NOT NULL,
  origin_address     text,
  origin_user_agent  text,
  origin_interface   text,
  outcome            text        NOT NULL CHECK (outcome IN ('done', 'refused')),
  reason             text,
  prev_hash          bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
  hash               bytea       NOT NULL UNIQUE CHECK (octet_length(hash) = 32)
);
COMMENT ON TABLE audit.events IS
  'Append-only, hash-chained audit trail. Append only through audit.append_event(); verify with `sirena audit verify`.';

-- Export of one alert's timeline: events about the alert itself, and events about other
-- subjects (deliveries digest, escalations) that name it in payload.alert_id.
CREATE INDEX ix_events_subject ON audit.events (subject_type, subject_id);
CREATE INDEX ix_events_payload_alert_id ON audit.events ((payload ->> 'alert_id')) WHERE payload ? 'alert_id';
-- Export by time range.
CREATE INDEX ix_events_at ON audit.events (at);

-- One field of the canonical form: NULL is '~', a value is '<characters>:<value>'. The length
-- prefix makes the concatenation unambiguous whatever the text holds (newlines, colons).
-- No SET search_path on these two: it would stop PostgreSQL inlining them (15 calls per event);
-- they only use pg_catalog built-ins, which are always searched first, and schema-qualify the rest.
CREATE FUNCTION audit.canonical_field(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN v IS NULL THEN '~' ELSE char_length(v)::text || ':' || v END $$;

-- The canonical serialization of one event, version 1. Fixed field order; the time is always
-- UTC with microseconds, never the session-TimeZone-dependent timestamptz::text.
CREATE FUNCTION audit.canonical(
  p_seq bigint, p_at timestamptz, p_actor_kind text, p_actor_name text, p_actor_operator_id bigint,
  p_actor_token_id bigint, p_action text, p_subject_type text, p_subject_id text, p_payload jsonb,
  p_origin_address text, p_origin_user_agent text, p_origin_interface text, p_outcome text, p_reason text
) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE  -- to_char is STABLE; IMMUTABLE would block inlining
AS $$
  SELECT 'sirena-audit-v1' || E'\n' || concat_ws(E'\n',
    audit.canonical_field(p_seq::text),
    audit.canonical_field(to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
    audit.canonical_field(p_actor_kind),
    audit.canonical_field(p_actor_name),
    audit.canonical_field(p_actor_operator_id::text),
    audit.canonical_field(p_actor_token_id::text),
    audit.canonical_field(p_action),
    audit.canonical_field(p_subject_type),
    audit.canonical_field(p_subject_id),
    audit.canonical_field(p_payload::text),
    audit.canonical_field(p_origin_address),
    audit.canonical_field(p_origin_user_agent),
    audit.canonical_field(p_origin_interface),
    audit.canonical_field(p_outcome),
    audit.canonical_field(p_reason))
$$;

CREATE FUNCTION audit.append_event(
  p_actor_kind text, p_actor_name text, p_actor_operator_id bigint, p_actor_token_id bigint,
  p_action text, p_subject_type text, p_subject_id text, p_payload jsonb,
  p_origin_address text, p_origin_user_agent text, p_origin_interface text,
  p_outcome text, p_reason text
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, audit
AS $$
DECLARE
  v_seq bigint;
  v_prev bytea;
  v_at timestamptz;
  v_hash bytea;
BEGIN
  -- Under REPEATABLE READ / SERIALIZABLE the snapshot predates the lock, so the tail read below
  -- would be stale and the chain would fork (caught by the PK, but as an obscure error).
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'audit.append_event needs a READ COMMITTED transaction, not %',
      current_setting('transaction_isolation') USING ERRCODE = 'invalid_transaction_state';
  END IF;
  -- Held to COMMIT: appends are serialized, so each sees the previous one's committed row.
  PERFORM pg_advisory_xact_lock(__LOCK_KEY__);
  SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit.events e ORDER BY e.seq DESC LIMIT 1;
  v_seq := coalesce(v_seq, 0) + 1;
  v_prev := coalesce(v_prev, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
  -- Taken after the lock, so time never goes backwards along the chain (barring clock steps).
  v_at := date_trunc('microseconds', clock_timestamp());
  p_payload := coalesce(p_payload, '{}'::jsonb);
  -- Optional fields hold NULL, never '': a CSV export can then tell "absent" from "empty".
  p_subject_type := nullif(p_subject_type, '');
  p_subject_id := nullif(p_subject_id, '');
  p_origin_address := nullif(p_origin_address, '');
  p_origin_user_agent := nullif(p_origin_user_agent, '');
  p_origin_interface := nullif(p_origin_interface, '');
  p_reason := nullif(p_reason, '');
  v_hash := sha256(v_prev || convert_to(audit.canonical(
    v_seq, v_at, p_actor_kind, p_actor_name, p_actor_operator_id, p_actor_token_id, p_action,
    p_subject_type, p_subject_id, p_payload, p_origin_address, p_origin_user_agent, p_origin_interface,
    p_outcome, p_reason), 'UTF8'));
  INSERT INTO audit.events (seq, at, actor_kind, actor_name, actor_operator_id, actor_token_id, action,
    subject_type, subject_id, payload, origin_address, origin_user_agent, origin_interface, outcome, reason,
    prev_hash, hash)
  VALUES (v_seq, v_at, p_actor_kind, p_actor_name, p_actor_operator_id, p_actor_token_id, p_action,
    p_subject_type, p_subject_id, p_payload, p_origin_address, p_origin_user_agent, p_origin_interface,
    p_outcome, p_reason, v_prev, v_hash);
  RETURN v_seq;
END $$;

CREATE FUNCTION audit.refuse_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
  RAISE EXCEPTION 'audit.events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON audit.events
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
-- Row triggers do not fire on TRUNCATE: it needs its own statement trigger.
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON audit.events
  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA audit FROM PUBLIC;
REVOKE ALL ON audit.events FROM PUBLIC;

DO $$
DECLARE app text := coalesce(nullif(current_setting('sirena.app_role', true), ''), 'sirena_app');
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA audit TO %I', app);
  EXECUTE format('GRANT SELECT ON audit.events TO %I', app);
  EXECUTE format('GRANT EXECUTE ON FUNCTION audit.append_event(text, text, bigint, bigint, text, text, '
                 'text, jsonb, text, text, text, text, text) TO %I', app);
END $$;
"""


def _execute_verbatim(sql: str) -> None:
    # Through the DBAPI cursor without parameters: neither SQLAlchemy (":MI" in to_char) nor
    # psycopg2 ("%" in format()) reinterprets anything in the SQL text.
    cursor = op.get_bind().connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def upgrade() -> None:
    _execute_verbatim(SCHEMA.replace("__LOCK_KEY__", str(APPEND_LOCK_KEY)))


def downgrade() -> None:
    # DROP does not fire the row or TRUNCATE triggers; only the owner (or a superuser) can do it.
    _execute_verbatim("DROP SCHEMA audit CASCADE")
