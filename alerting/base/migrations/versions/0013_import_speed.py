"""contact locations and memberships: no per-row foreign key check; a contact's delete cascades per statement

Revision ID: 0013_import_speed
Revises: 0012_targeting_speed

A contact import writes about 1.3 locations and 0.1 memberships per contact. Their foreign keys
to contacts cost a look-up and a row lock (FOR KEY SHARE) per inserted row: 23 s of the 80 s the
locations statement took for 1,000,000 contacts (EXPLAIN ANALYZE, loaded machine). Their only
job beyond that was ON DELETE CASCADE, which a statement-level trigger on contacts now does, for
any number of deleted contacts in one statement.

Writers never leave a location or membership without its contact: the import's upsert locks
every contact of the file until it commits (ON CONFLICT locks the conflicting row even when it
leaves it unchanged), and `directory.add_members` locks its contacts FOR KEY SHARE; a delete
running at the same time waits, then its trigger removes what they wrote. (TRUNCATE contacts
alone stays impossible: followups and replies keep their foreign keys to contacts.)
"""

from __future__ import annotations

from alembic import op

revision = "0013_import_speed"
down_revision = "0012_targeting_speed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("fk_contact_locations_contact_id_contacts", "contact_locations", type_="foreignkey")
    op.drop_constraint("fk_group_members_contact_id_contacts", "group_members", type_="foreignkey")
    op.execute("""
CREATE FUNCTION contacts_cascade_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_locations WHERE contact_id IN (SELECT id FROM gone);
    DELETE FROM group_members WHERE contact_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER contacts_cascade_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION contacts_cascade_delete();
""")


def downgrade() -> None:
    op.execute("DROP TRIGGER contacts_cascade_delete ON contacts; DROP FUNCTION contacts_cascade_delete()")
    op.create_foreign_key("fk_group_members_contact_id_contacts", "group_members", "contacts", ["contact_id"],
                          ["id"], ondelete="CASCADE")
    op.create_foreign_key("fk_contact_locations_contact_id_contacts", "contact_locations", "contacts",
                          ["contact_id"], ["id"], ondelete="CASCADE")
