"""pipeline: live delivery counters kept by statement triggers, fan-out progress on alerts

Revision ID: 0005_pipeline
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_pipeline"
down_revision = "0001"
branch_labels = None
depends_on = None

# Counters change in the same statement as the deliveries they count, whatever code path changes
# them (claim, record, receipt, cancel, reaper), so the live view never needs COUNT(*) over an alert.
# Rows are upserted in key order so concurrent batches never deadlock on the counter rows.
TRIGGERS = """
CREATE FUNCTION deliveries_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO alert_counters AS c (alert_id, state, carrier, n)
  SELECT alert_id, state, coalesce(carrier, ''), count(*) FROM new_rows
  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (alert_id, state, carrier) DO UPDATE SET n = c.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE FUNCTION deliveries_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO alert_counters AS c (alert_id, state, carrier, n)
  SELECT alert_id, state, carrier, sum(d) FROM (
      SELECT alert_id, state, coalesce(carrier, '') AS carrier, -1 AS d FROM old_rows
      UNION ALL
      SELECT alert_id, state, coalesce(carrier, ''), 1 FROM new_rows) x
  GROUP BY 1, 2, 3 HAVING sum(d) <> 0 ORDER BY 1, 2, 3
  ON CONFLICT (alert_id, state, carrier) DO UPDATE SET n = c.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE FUNCTION deliveries_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO alert_counters AS c (alert_id, state, carrier, n)
  SELECT alert_id, state, coalesce(carrier, ''), -count(*) FROM old_rows
  WHERE EXISTS (SELECT 1 FROM alerts a WHERE a.id = old_rows.alert_id)
  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (alert_id, state, carrier) DO UPDATE SET n = c.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deliveries_count_insert();
CREATE TRIGGER deliveries_count_update AFTER UPDATE ON deliveries
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION deliveries_count_update();
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION deliveries_count_delete();
"""


def upgrade() -> None:
    op.create_table(
        "alert_counters",
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("carrier", sa.String(64), nullable=False, server_default=""),
        sa.Column("n", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("alert_id", "state", "carrier", name="pk_alert_counters"),
    )
    op.add_column("alerts", sa.Column("fanout_cursor", sa.BigInteger, nullable=True))
    op.add_column("alerts", sa.Column("fanout_done", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("alerts", sa.Column("first_submit_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alerts", sa.Column("last_submit_at", sa.DateTime(timezone=True), nullable=True))
    # Set-based writers (INSERT … SELECT, COPY) rely on these, not on Python-side defaults.
    for column, default in (("state", "'queued'"), ("attempts", "0"), ("possible_duplicates", "0"),
                            ("parts_delivered", "0")):
        op.alter_column("deliveries", column, server_default=sa.text(default))
    op.execute(TRIGGERS)


def downgrade() -> None:
    op.execute("DROP TRIGGER deliveries_count_insert ON deliveries")
    op.execute("DROP TRIGGER deliveries_count_update ON deliveries")
    op.execute("DROP TRIGGER deliveries_count_delete ON deliveries")
    op.execute("DROP FUNCTION deliveries_count_insert(), deliveries_count_update(), deliveries_count_delete()")
    for column in ("last_submit_at", "first_submit_at", "fanout_done", "fanout_cursor"):
        op.drop_column("alerts", column)
    op.drop_table("alert_counters")
