"""contact_numbers: a contact's second and third numbers; deliveries tried on the next number

Revision ID: 0028_contact_numbers
Revises: 0026_retrying_index

Issue 21: responders carry two phones, and a message that fails for good on one should be tried
on the other. A contact's first number stays `contacts.msisdn` (what targeting reads and fan-out
writes, unchanged); the second and third live in `contact_numbers` (position 2 or 3), so the
contacts rows targeting scans do not grow and an import writes this table only for the rows that
have more numbers. A number belongs to one contact: unique here, and a trigger refuses one that
is already another contact's first number (the services check the other way round, a new first
number that is someone's second, and name the field). As for locations and memberships (0013),
no foreign key: the contacts' statement-level delete trigger removes a deleted contact's numbers.

Deliveries: `number_position` (NULL for the first number: fan-out's hot INSERT writes nothing
more) and `previous_delivery_id` (the delivery on the number before, which then has the new
state `next_number`: failed there, tried on the next; broadcast/next_numbers.py), and a partial
index on the deliveries to a next number, per alert.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028_contact_numbers"
down_revision = "0026_retrying_index"
branch_labels = None
depends_on = None

_STATES = ("queued", "submitting", "submitted", "delivered", "failed", "expired", "waiting_route", "cancelled")


def _state_check(states: tuple[str, ...]) -> str:
    return "state IN (" + ", ".join(f"'{s}'" for s in states) + ")"


def upgrade() -> None:
    op.create_table(
        "contact_numbers",
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("msisdn", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("contact_id", "position", name=op.f("pk_contact_numbers")),
        sa.UniqueConstraint("msisdn", name=op.f("uq_contact_numbers_msisdn")),
        sa.CheckConstraint("position BETWEEN 2 AND 3", name=op.f("ck_contact_numbers_position")),
    )
    op.execute("""
CREATE FUNCTION contact_numbers_not_a_first_number() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM contacts WHERE msisdn = NEW.msisdn AND id <> NEW.contact_id) THEN
        RAISE EXCEPTION 'number % is already the first number of another contact', NEW.msisdn
              USING ERRCODE = 'unique_violation', CONSTRAINT = 'uq_contact_numbers_msisdn';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER contact_numbers_not_a_first_number BEFORE INSERT OR UPDATE OF msisdn ON contact_numbers
    FOR EACH ROW EXECUTE FUNCTION contact_numbers_not_a_first_number();
CREATE OR REPLACE FUNCTION contacts_cascade_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_locations WHERE contact_id IN (SELECT id FROM gone);
    DELETE FROM group_members WHERE contact_id IN (SELECT id FROM gone);
    DELETE FROM contact_numbers WHERE contact_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
""")
    op.add_column("deliveries", sa.Column("number_position", sa.SmallInteger(), nullable=True))
    op.add_column("deliveries", sa.Column("previous_delivery_id", sa.BigInteger(), nullable=True))
    # The deliveries to a contact's next number, per alert (the alert page lists them): only those
    # rows, so fan-out's rows (number_position NULL) never touch it.
    op.create_index("ix_deliveries_next_numbers", "deliveries", ["alert_id"],
                    postgresql_where=sa.text("number_position IS NOT NULL"))
    # NOT VALID, then VALIDATE: the check of the existing rows scans deliveries without blocking
    # the writers (a plain ADD CONSTRAINT would hold ACCESS EXCLUSIVE for the whole scan).
    op.execute("ALTER TABLE deliveries DROP CONSTRAINT ck_deliveries_deliverystate")
    op.execute("ALTER TABLE deliveries ADD CONSTRAINT ck_deliveries_deliverystate CHECK ("
               + _state_check((*_STATES, "next_number")) + ") NOT VALID")
    op.execute("ALTER TABLE deliveries VALIDATE CONSTRAINT ck_deliveries_deliverystate")


def downgrade() -> None:
    op.execute("UPDATE deliveries SET state = 'failed' WHERE state = 'next_number'")
    op.execute("ALTER TABLE deliveries DROP CONSTRAINT ck_deliveries_deliverystate")
    op.execute("ALTER TABLE deliveries ADD CONSTRAINT ck_deliveries_deliverystate CHECK ("
               + _state_check(_STATES) + ")")
    op.drop_index("ix_deliveries_next_numbers", table_name="deliveries")
    op.drop_column("deliveries", "previous_delivery_id")
    op.drop_column("deliveries", "number_position")
    op.execute("""
CREATE OR REPLACE FUNCTION contacts_cascade_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_locations WHERE contact_id IN (SELECT id FROM gone);
    DELETE FROM group_members WHERE contact_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
DROP TRIGGER contact_numbers_not_a_first_number ON contact_numbers;
DROP FUNCTION contact_numbers_not_a_first_number();
""")
    op.drop_table("contact_numbers")
