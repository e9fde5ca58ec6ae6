"""Self-registration by SMS: published keywords, requests, the admin's policy, zone subscriptions

Revision ID: 0027_self_registration
Revises: 0026_retrying_index

Issue 21. A resident texts ALTA (or JOIN), optionally with a keyword an admin published
(`ALTA CENTRO`), to a short code or a shared code's keyword; the request waits in
`registrations` for SI/YES and only then becomes a contact. Such a contact has no location: a
zone reaches it through `zone_subscriptions` (by zone name, so across the zone's versions),
read by targeting beside the located points (geo/reach.py). Registration stays off until an
admin turns it on (`registration_policy`, one row).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027_self_registration"
down_revision = "0026_retrying_index"
branch_labels = None
depends_on = None

STATES = ("pending", "active", "expired", "withdrawn", "replaced", "existing", "refused", "limited")


def upgrade() -> None:
    op.create_table(
        "registration_policy",
        sa.Column("id", sa.SmallInteger(), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("confirm_within_s", sa.Integer(), nullable=False, server_default="86400"),
        sa.Column("per_hour", sa.SmallInteger(), nullable=False, server_default="3"),
        sa.Column("updated_by", sa.String(64), nullable=False, server_default="system"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("id = 1", name="ck_registration_policy_one_row"),
        sa.CheckConstraint("confirm_within_s BETWEEN 60 AND 2592000", name="ck_registration_policy_confirm_window"),
        sa.CheckConstraint("per_hour BETWEEN 1 AND 100", name="ck_registration_policy_per_hour_range"),
    )
    op.execute("INSERT INTO registration_policy (id) VALUES (1)")
    op.create_table(
        "registration_keywords",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("keyword", sa.String(32), nullable=False),
        sa.Column("zone_name", sa.String(100), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("published_by", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_registration_keywords_group_id_groups",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("keyword", name="uq_registration_keywords_keyword"),
        sa.CheckConstraint("(zone_name IS NULL) <> (group_id IS NULL)", name="ck_registration_keywords_one_target"),
    )
    op.create_table(
        "registrations",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("msisdn", sa.String(16), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("language", sa.String(8), nullable=False, server_default="es"),
        sa.Column("word", sa.String(32), nullable=False),
        sa.Column("keyword", sa.String(32), nullable=True),
        sa.Column("zone_name", sa.String(100), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("sender_name", sa.String(64), nullable=False),
        sa.Column("shared_keyword", sa.String(32), nullable=True),
        sa.Column("inbound_id", sa.BigInteger(), nullable=True),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN (" + ", ".join(f"'{s}'" for s in STATES) + ")",
                           name="ck_registrations_registrationstate"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_registrations_group_id_groups",
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["inbound_id"], ["inbound_messages.id"],
                                name="fk_registrations_inbound_id_inbound_messages"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_registrations_contact_id_contacts",
                                ondelete="SET NULL"),
    )
    op.create_index("ix_registrations_msisdn", "registrations", ["msisdn", "requested_at"])
    op.create_index("uq_registrations_msisdn_pending", "registrations", ["msisdn"], unique=True,
                    postgresql_where=sa.text("state = 'pending'"))
    op.create_index("ix_registrations_expiry", "registrations", ["expires_at"],
                    postgresql_where=sa.text("state = 'pending'"))
    op.create_index("ix_registrations_state", "registrations", ["state", "id"])
    op.create_index("ix_registrations_contact_id", "registrations", ["contact_id"])
    op.create_table(
        "zone_subscriptions",
        sa.Column("zone_name", sa.String(100), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(32), nullable=False, server_default="registered"),
        sa.Column("registration_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("zone_name", "contact_id", name="pk_zone_subscriptions"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_zone_subscriptions_contact_id_contacts",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_zone_subscriptions_contact_id", "zone_subscriptions", ["contact_id"])


def downgrade() -> None:
    op.drop_table("zone_subscriptions")
    op.drop_table("registrations")
    op.drop_table("registration_keywords")
    op.drop_table("registration_policy")
