"""inbound: receipts, follow-up messages, escalations, and the message-id look-up index

Revision ID: 0006_inbound
Revises: 0001

Receipts are matched to deliveries through a GIN index over the lower-cased message ids of each
delivery (`sirena_message_keys`). Measured on 100,000-row UPDATEs like the gateway's record
statement (this machine, noisy): no index 5.3-7.6 µs/row, GIN on `lower(ids::text)::text[]`
+2-3 µs/row, GIN that also strips leading zeros with a regex +9 µs/row, a side table written by a
trigger would add a B-tree insert and a heap row per part. So the index only lower-cases; leading
zeros are stripped at look-up time (see broadcast/receipts.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_inbound"
down_revision = "0001"
branch_labels = None
depends_on = None

# The canonical key of a message id as submit_sm_resp gave it: lower case, no leading zeros
# (broadcast/receipts.py converts receipt ids into the same form, per carrier).
KEY_FUNCTION = """
CREATE FUNCTION sirena_message_key(id text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT coalesce(nullif(ltrim(lower(id), '0'), ''), '0') $$;
"""

# Rows submitted in this very transaction are the ones whose ids the statement just recorded
# (claims, receipts, cancels and the reaper never set state 'submitted' with submitted_at = now()).
# Some SMSCs answer every part of a long message with the same id: such a key stands for the
# whole message (part_no NULL). DISTINCT ON keeps one row per key, so the upsert can never touch a
# row twice, and any failure here only costs matching (receipts wait, counted): it must never fail
# the gateway's record of what it sent.
PARTS_FUNCTION = """
CREATE FUNCTION {table}_message_parts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO message_parts AS p (carrier, msg_key, delivery_id, followup_id, part_no)
  SELECT DISTINCT ON (carrier, key) carrier, key, {delivery}, {followup}, CASE WHEN same > 1 THEN NULL ELSE n END
    FROM (SELECT n.carrier, n.id, sirena_message_key(m.mid) AS key, m.n,
                 count(*) OVER (PARTITION BY n.id, sirena_message_key(m.mid)) AS same
            FROM new_rows n, unnest(n.message_ids) WITH ORDINALITY AS m(mid, n)
           WHERE n.state = 'submitted' AND n.submitted_at = now() AND n.carrier IS NOT NULL
             AND coalesce(m.mid, '') <> '') x
   ORDER BY carrier, key, n
  ON CONFLICT (carrier, msg_key) DO UPDATE
     SET delivery_id = EXCLUDED.delivery_id, followup_id = EXCLUDED.followup_id, part_no = EXCLUDED.part_no;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'message_parts not recorded for {table} (receipts will wait unmatched): %', SQLERRM;
  RETURN NULL;
END $$;
"""
PARTS_TRIGGERS = (PARTS_FUNCTION.format(table="deliveries", delivery="id", followup="NULL::bigint")
                  + PARTS_FUNCTION.format(table="followups", delivery="NULL::bigint", followup="id") + """
CREATE TRIGGER deliveries_message_parts AFTER UPDATE ON deliveries
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deliveries_message_parts();
CREATE TRIGGER followups_message_parts AFTER UPDATE ON followups
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION followups_message_parts();
""")


def upgrade() -> None:
    op.execute(KEY_FUNCTION)
    op.create_table(
        "followups",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=True),
        sa.Column("delivery_id", sa.BigInteger, sa.ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True),
        sa.Column("contact_id", sa.BigInteger, sa.ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True),
        sa.Column("reply_id", sa.BigInteger, sa.ForeignKey("replies.id", ondelete="SET NULL"), nullable=True),
        sa.Column("msisdn", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("sender_name", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("test_only", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("allowed_carriers", postgresql.ARRAY(sa.String(64)), nullable=True),
        sa.Column("avoid_carriers", postgresql.ARRAY(sa.String(64)), nullable=True),
        sa.Column("state", sa.String(24), nullable=False, server_default="queued"),
        sa.Column("carrier", sa.String(64), nullable=True),
        sa.Column("bind", sa.String(64), nullable=True),
        sa.Column("message_ids", postgresql.ARRAY(sa.String(80)), nullable=True),
        sa.Column("parts", sa.SmallInteger, nullable=True),
        sa.Column("parts_delivered", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("attempts", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_reason", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False, server_default="system"),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_followups_alert_id", "followups", ["alert_id", "id"])
    op.create_index("ix_followups_claim", "followups", ["id"], postgresql_where=sa.text("state = 'queued'"))
    op.create_table(
        "message_parts",
        sa.Column("carrier", sa.String(64), nullable=False),
        sa.Column("msg_key", sa.String(80), nullable=False),
        sa.Column("delivery_id", sa.BigInteger, nullable=True),
        sa.Column("followup_id", sa.BigInteger, nullable=True),
        sa.Column("part_no", sa.SmallInteger, nullable=True),  # NULL: one id for every part
        sa.PrimaryKeyConstraint("carrier", "msg_key", name="pk_message_parts"),
    )
    op.create_table(
        "receipts",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("inbound_id", sa.BigInteger, sa.ForeignKey("inbound_messages.id"), nullable=False, unique=True),
        sa.Column("carrier", sa.String(64), nullable=False),
        sa.Column("raw_id", sa.String(80), nullable=False),
        sa.Column("msg_key", sa.String(80), nullable=False),
        sa.Column("stat", sa.String(8), nullable=False),
        sa.Column("final", sa.Boolean, nullable=False),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivery_id", sa.BigInteger, sa.ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True),
        sa.Column("followup_id", sa.BigInteger, sa.ForeignKey("followups.id", ondelete="SET NULL"), nullable=True),
        sa.Column("part_no", sa.SmallInteger, nullable=True),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The periodic matcher's work list: receipts that found no message yet.
    op.create_index("ix_receipts_pending", "receipts", ["received_at"],
                    postgresql_where=sa.text("matched_at IS NULL"))
    op.create_index("ix_receipts_delivery_id", "receipts", ["delivery_id"])
    op.create_index("ix_receipts_followup_id", "receipts", ["followup_id"])
    op.create_index("ix_receipts_carrier_received", "receipts", ["carrier", "received_at"])
    op.execute(PARTS_TRIGGERS)
    op.create_table(
        "escalations",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("stage", sa.String(24), nullable=False),
        sa.Column("reply_id", sa.BigInteger, sa.ForeignKey("replies.id", ondelete="SET NULL"), nullable=True),
        sa.Column("recipients", sa.Integer, nullable=False, server_default="0"),
        sa.Column("details", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    # One of each stage per alert (a HELP escalation: one per reply), so a second pass does nothing.
    op.create_index("uq_escalations_alert_stage", "escalations",
                    ["alert_id", "stage", sa.text("coalesce(reply_id, 0)")], unique=True)
    # The inbound sweep's work list, and the live view's reply stream.
    op.create_index("ix_inbound_messages_unprocessed", "inbound_messages", ["id"],
                    postgresql_where=sa.text("processed_at IS NULL"))
    op.create_index("ix_replies_alert_id_id", "replies", ["alert_id", "id"])
    op.create_index("ix_replies_contact_id", "replies", ["contact_id"])


def downgrade() -> None:
    op.drop_index("ix_replies_contact_id", table_name="replies")
    op.drop_index("ix_replies_alert_id_id", table_name="replies")
    op.drop_index("ix_inbound_messages_unprocessed", table_name="inbound_messages")
    op.drop_table("escalations")
    op.execute("DROP TRIGGER deliveries_message_parts ON deliveries")
    op.execute("DROP TRIGGER followups_message_parts ON followups")
    op.execute("DROP FUNCTION deliveries_message_parts(), followups_message_parts()")
    op.drop_table("receipts")
    op.drop_table("message_parts")
    op.drop_table("followups")
    op.execute("DROP FUNCTION sirena_message_key(text)")
