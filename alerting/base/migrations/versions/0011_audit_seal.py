"""audit: hash each event at insert, link the chain afterwards (the seal); no lock held to COMMIT

Revision ID: 0011_audit_seal
Revises: 0017_sender_test_route

Before, `audit.append_event` took the chain's advisory lock and held it until the caller's COMMIT,
so appends were serialized through their own WAL flush (137 appends/s with 8 writers). Now an
append only inserts the event with the SHA-256 of its content (`content_hash`, canonical form v2,
which does not depend on the chain) and takes no lock: appends of different transactions commit
side by side and share WAL flushes. `audit.seal_events()` links what has committed: under the
same advisory lock, held only for its own short transaction, it gives each unsealed event, in id
order, the next `seq`, `prev_hash` = the previous event's hash and
`hash` = SHA-256(prev_hash || content_hash || seq as 8 bytes big-endian).

Events written before this migration keep their seq, prev_hash and hash (version 1, content_hash
NULL) and verify as before; the first sealed event links to the last of them.

The trigger still refuses DELETE, TRUNCATE and every UPDATE but one: sealing an unsealed event,
i.e. filling seq, prev_hash and hash where all three are NULL, changing nothing else. Only the
owner may UPDATE at all (the app role has no UPDATE), and `seal_events` is the owner's.
"""

from __future__ import annotations

from alembic import op

revision = "0011_audit_seal"
down_revision = "0017_sender_test_route"
branch_labels = None
depends_on = None

# Migration 0002_audit's key: sealers now take it, appends no longer do.
APPEND_LOCK_KEY = 0x534952415544

CONTENT_COLUMNS = ("at, actor_kind, actor_name, actor_operator_id, actor_token_id, action, subject_type, "
                   "subject_id, payload, origin_address, origin_user_agent, origin_interface, outcome, reason")

UPGRADE = r"""
-- 1. An identity for events that have no place in the chain yet. Existing events get id = seq.
-- A rewrite, not an UPDATE: no trigger to step around, and no HOT chains, which would leave the
-- indexes created below unusable (indcheckxmin) while any older transaction runs in the cluster.
ALTER TABLE audit.events ADD COLUMN id bigint;
ALTER TABLE audit.events ALTER COLUMN id TYPE bigint USING seq;
ALTER TABLE audit.events ALTER COLUMN id SET NOT NULL;
ALTER TABLE audit.events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('audit.events', 'id'), coalesce(max(id), 0) + 1, false) FROM audit.events;
ALTER TABLE audit.events DROP CONSTRAINT events_pkey;
ALTER TABLE audit.events ADD CONSTRAINT events_pkey PRIMARY KEY (id);

-- 2. seq, prev_hash and hash are NULL until the event is sealed; content_hash is set at insert.
ALTER TABLE audit.events ALTER COLUMN seq DROP NOT NULL;
ALTER TABLE audit.events ALTER COLUMN prev_hash DROP NOT NULL;
ALTER TABLE audit.events ALTER COLUMN hash DROP NOT NULL;
-- Partial: an append does not touch them (its seq and hash are NULL), only its seal does.
CREATE UNIQUE INDEX events_seq_key ON audit.events (seq) WHERE seq IS NOT NULL;
ALTER TABLE audit.events DROP CONSTRAINT events_hash_key;
CREATE UNIQUE INDEX events_hash_key ON audit.events (hash) WHERE hash IS NOT NULL;
ALTER TABLE audit.events ADD COLUMN content_hash bytea CHECK (octet_length(content_hash) = 32);
ALTER TABLE audit.events ADD CONSTRAINT events_sealed_whole
  CHECK ((seq IS NULL) = (prev_hash IS NULL) AND (seq IS NULL) = (hash IS NULL));
ALTER TABLE audit.events ADD CONSTRAINT events_unsealed_hashed CHECK (seq IS NOT NULL OR content_hash IS NOT NULL);
-- The sealer's work list, and verify's list of events committed after the last seal.
CREATE INDEX ix_events_unsealed ON audit.events (id) WHERE seq IS NULL;
COMMENT ON TABLE audit.events IS
  'Append-only, hash-chained audit trail. Append only through audit.append_event(), link with audit.seal_events(); verify with `sirena audit verify`.';

-- 3. Canonical form version 2, of the content only (the chain position is added by the seal):
--    'sirena-audit-v2' LF, then the 14 content fields joined by TAB: the time as
--    YYYY-MM-DDTHH:MM:SS.ffffffZ (UTC), NULL as \N, any other value with backslash, BS, FF, LF,
--    CR, TAB and VT escaped as \\ \b \f \n \r \t \v. That is PostgreSQL's COPY text format, so
--    the verifier hashes the bytes COPY sends almost as they arrive (audit/scan.py).
CREATE FUNCTION audit.copy_field(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN v IS NULL THEN E'\\N' ELSE
    replace(replace(replace(replace(replace(replace(replace(v,
      E'\\', E'\\\\'), chr(8), E'\\b'), chr(12), E'\\f'), chr(10), E'\\n'), chr(13), E'\\r'),
      chr(9), E'\\t'), chr(11), E'\\v') END
$$;

CREATE FUNCTION audit.content_hash(
  p_at timestamptz, p_actor_kind text, p_actor_name text, p_actor_operator_id bigint, p_actor_token_id bigint,
  p_action text, p_subject_type text, p_subject_id text, p_payload jsonb, p_origin_address text,
  p_origin_user_agent text, p_origin_interface text, p_outcome text, p_reason text
) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE  -- to_char is STABLE
AS $$
  SELECT sha256(convert_to('sirena-audit-v2' || E'\n' || concat_ws(E'\t',
    to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    audit.copy_field(p_actor_kind),
    audit.copy_field(p_actor_name),
    audit.copy_field(p_actor_operator_id::text),
    audit.copy_field(p_actor_token_id::text),
    audit.copy_field(p_action),
    audit.copy_field(p_subject_type),
    audit.copy_field(p_subject_id),
    audit.copy_field(p_payload::text),
    audit.copy_field(p_origin_address),
    audit.copy_field(p_origin_user_agent),
    audit.copy_field(p_origin_interface),
    audit.copy_field(p_outcome),
    audit.copy_field(p_reason)), 'UTF8'))
$$;

-- 4. Append: insert with the content hash, no lock. Same signature as before; returns the id.
CREATE OR REPLACE FUNCTION audit.append_event(
  p_actor_kind text, p_actor_name text, p_actor_operator_id bigint, p_actor_token_id bigint,
  p_action text, p_subject_type text, p_subject_id text, p_payload jsonb,
  p_origin_address text, p_origin_user_agent text, p_origin_interface text,
  p_outcome text, p_reason text
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, audit
AS $$
DECLARE
  v_id bigint;
  v_at timestamptz := date_trunc('microseconds', clock_timestamp());
BEGIN
  p_payload := coalesce(p_payload, '{}'::jsonb);
  -- Optional fields hold NULL, never '': a CSV export can then tell "absent" from "empty".
  p_subject_type := nullif(p_subject_type, '');
  p_subject_id := nullif(p_subject_id, '');
  p_origin_address := nullif(p_origin_address, '');
  p_origin_user_agent := nullif(p_origin_user_agent, '');
  p_origin_interface := nullif(p_origin_interface, '');
  p_reason := nullif(p_reason, '');
  INSERT INTO audit.events (at, actor_kind, actor_name, actor_operator_id, actor_token_id, action,
    subject_type, subject_id, payload, origin_address, origin_user_agent, origin_interface, outcome, reason,
    content_hash)
  VALUES (v_at, p_actor_kind, p_actor_name, p_actor_operator_id, p_actor_token_id, p_action,
    p_subject_type, p_subject_id, p_payload, p_origin_address, p_origin_user_agent, p_origin_interface,
    p_outcome, p_reason,
    audit.content_hash(v_at, p_actor_kind, p_actor_name, p_actor_operator_id, p_actor_token_id, p_action,
      p_subject_type, p_subject_id, p_payload, p_origin_address, p_origin_user_agent, p_origin_interface,
      p_outcome, p_reason))
  RETURNING id INTO v_id;
  RETURN v_id;
END $$;

-- 5. Seal: link up to p_limit committed, unsealed events, in id order, after the chain's head.
CREATE FUNCTION audit.seal_events(p_limit integer DEFAULT 50000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, audit
AS $$
DECLARE
  v_seq bigint;
  v_prev bytea;
  v_ids bigint[];
  v_contents bytea[];
  v_seqs bigint[] := '{}';
  v_prevs bytea[] := '{}';
  v_hashes bytea[] := '{}';
  v_n integer;
  v_done integer;
BEGIN
  -- Under REPEATABLE READ the snapshot would predate the lock: a stale head, a forked chain.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'audit.seal_events needs a READ COMMITTED transaction, not %',
      current_setting('transaction_isolation') USING ERRCODE = 'invalid_transaction_state';
  END IF;
  -- Held to this transaction's COMMIT: the next sealer reads the head this one leaves.
  PERFORM pg_advisory_xact_lock(__LOCK_KEY__);
  SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit.events e
   WHERE e.seq IS NOT NULL ORDER BY e.seq DESC LIMIT 1;
  v_seq := coalesce(v_seq, 0);
  v_prev := coalesce(v_prev, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
  SELECT array_agg(u.id ORDER BY u.id), array_agg(u.content_hash ORDER BY u.id) INTO v_ids, v_contents
    FROM (SELECT e.id, e.content_hash FROM audit.events e WHERE e.seq IS NULL ORDER BY e.id LIMIT p_limit) u;
  v_n := coalesce(array_length(v_ids, 1), 0);
  FOR i IN 1 .. v_n LOOP
    v_seq := v_seq + 1;
    v_seqs[i] := v_seq;
    v_prevs[i] := v_prev;
    v_prev := sha256(v_prev || v_contents[i] || int8send(v_seq));
    v_hashes[i] := v_prev;
  END LOOP;
  IF v_n > 0 THEN
    UPDATE audit.events e SET seq = u.seq, prev_hash = u.prev_hash, hash = u.hash
      FROM unnest(v_ids, v_seqs, v_prevs, v_hashes) AS u(id, seq, prev_hash, hash)
     WHERE e.id = u.id AND e.seq IS NULL;
    GET DIAGNOSTICS v_done = ROW_COUNT;
    IF v_done <> v_n THEN
      RAISE EXCEPTION 'audit.seal_events: sealed % of % events', v_done, v_n;
    END IF;
  END IF;
  RETURN v_n;
END $$;

-- 6. The trigger: no DELETE, no TRUNCATE, no UPDATE except the seal of an unsealed event.
CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL
     AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL
     AND (NEW.id, NEW.at, NEW.actor_kind, NEW.actor_name, NEW.actor_operator_id, NEW.actor_token_id,
          NEW.action, NEW.subject_type, NEW.subject_id, NEW.payload::text, NEW.origin_address,
          NEW.origin_user_agent, NEW.origin_interface, NEW.outcome, NEW.reason, NEW.content_hash)
         IS NOT DISTINCT FROM
         (OLD.id, OLD.at, OLD.actor_kind, OLD.actor_name, OLD.actor_operator_id, OLD.actor_token_id,
          OLD.action, OLD.subject_type, OLD.subject_id, OLD.payload::text, OLD.origin_address,
          OLD.origin_user_agent, OLD.origin_interface, OLD.outcome, OLD.reason, OLD.content_hash) THEN
    RETURN NEW;  -- the seal: the event's place in the chain, given once
  END IF;
  RAISE EXCEPTION 'audit.events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

REVOKE ALL ON FUNCTION audit.copy_field(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.content_hash(timestamptz, text, text, bigint, bigint, text, text, text, jsonb, text,
  text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.seal_events(integer) FROM PUBLIC;

DO $$
DECLARE app text := coalesce(nullif(current_setting('sirena.app_role', true), ''), 'sirena_app');
BEGIN
  EXECUTE format('GRANT EXECUTE ON FUNCTION audit.seal_events(integer) TO %I', app);
END $$;
"""

DOWNGRADE = r"""
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM audit.events WHERE content_hash IS NOT NULL) THEN
    RAISE EXCEPTION 'cannot downgrade 0011_audit_seal: the trail holds version 2 events, which version 1 cannot verify';
  END IF;
END $$;
DROP FUNCTION audit.seal_events(integer);
DROP INDEX audit.ix_events_unsealed;
ALTER TABLE audit.events DROP CONSTRAINT events_unsealed_hashed;
ALTER TABLE audit.events DROP CONSTRAINT events_sealed_whole;
ALTER TABLE audit.events DROP COLUMN content_hash;
DROP INDEX audit.events_seq_key;
DROP INDEX audit.events_hash_key;
ALTER TABLE audit.events ADD CONSTRAINT events_hash_key UNIQUE (hash);
ALTER TABLE audit.events DROP CONSTRAINT events_pkey;
ALTER TABLE audit.events ALTER COLUMN seq SET NOT NULL;
ALTER TABLE audit.events ALTER COLUMN prev_hash SET NOT NULL;
ALTER TABLE audit.events ALTER COLUMN hash SET NOT NULL;
ALTER TABLE audit.events ADD CONSTRAINT events_pkey PRIMARY KEY (seq);
ALTER TABLE audit.events DROP COLUMN id;
DROP FUNCTION audit.content_hash(timestamptz, text, text, bigint, bigint, text, text, text, jsonb, text, text, text,
  text, text);
DROP FUNCTION audit.copy_field(text);
"""


def _execute_verbatim(sql: str) -> None:
    # Through the DBAPI cursor without parameters, as 0002_audit: nothing reinterprets the SQL text.
    cursor = op.get_bind().connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def _function_from_0002(name: str) -> str:
    """The CREATE FUNCTION statement of `name` as migration 0002_audit wrote it (for the downgrade)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_audit_0002", Path(__file__).with_name("0002_audit.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sql: str = module.SCHEMA
    start = sql.index(f"CREATE FUNCTION audit.{name}(")
    end = sql.index("END $$;", start) + len("END $$;")
    return sql[start:end].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    _execute_verbatim(UPGRADE.replace("__LOCK_KEY__", str(APPEND_LOCK_KEY)))


def downgrade() -> None:
    _execute_verbatim(DOWNGRADE)
    for name in ("append_event", "refuse_change"):
        _execute_verbatim(_function_from_0002(name).replace("__LOCK_KEY__", str(APPEND_LOCK_KEY)))
