"""Approved message templates in the database; operators bounded to an area

Revision ID: 0029_templates_areas
Revises: 0026_retrying_index

Issue 21. The six message templates the compose form offered were hard-coded
(alerting/interfaces/web/message_templates.py) and nobody had approved them. They become rows of
`message_templates` (with their versions, authors and approvals), seeded here PENDING APPROVAL:
submitted by no operator, so any two approvers may approve them once on /templates (or with
`sirena templates approve`). Until then compose offers no template: a text that nobody reviewed
must not earn the one-approver rule (alerting/alerts/template_use.py).

The seeds' approval hash is computed as alerting/alerts/templates.py computes it (a test checks
that they agree): SHA-256 of the JSON of name, titles, texts, placeholders and hints.

`alerts` gains the template version it was built from and its placeholder values.
`operator_areas` holds the zones and groups an operator is bounded to (alerting/directory/areas.py).
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0029_templates_areas"
down_revision = "0026_retrying_index"
branch_labels = None
depends_on = None

SEEDS = [
    ("evacuate", {"es": "Evacuación", "en": "Evacuation"}, {
        "es": "EVACUAR AHORA {nombre|vecino}: diríjase al punto de encuentro más cercano. Responda ACK {codigo} "
              "al estar a salvo o AYUDA {codigo} si necesita ayuda.",
        "en": "EVACUATE NOW: go to the nearest meeting point. Reply ACK {codigo} when safe or HELP {codigo} "
              "if you need help."}, "flash"),
    ("wildfire", {"es": "Incendio forestal", "en": "Wildfire"}, {
        "es": "Incendio forestal cerca de su sector. Prepárese para evacuar y siga las indicaciones de Bomberos. "
              "Responda ACK {codigo}.",
        "en": "Wildfire near your area. Get ready to evacuate and follow the fire brigade. Reply ACK {codigo}."},
     "high"),
    ("callout", {"es": "Llamado a brigada", "en": "Crew call-out"}, {
        "es": "Llamado a {unidad|brigada}: presentarse en el cuartel. Responda ACK {codigo} si va, NO {codigo} "
              "si no puede.",
        "en": "Call-out for {unidad|crew}: report to the station. Reply ACK {codigo} if coming, NO {codigo} if not."},
     "high"),
    ("water", {"es": "Corte de agua", "en": "Water cut"}, {
        "es": "Corte de agua programado en su sector. Guarde agua. Más información con su municipio.",
        "en": "Scheduled water cut in your area. Store water. More from your municipality."}, "normal"),
    ("road", {"es": "Corte de ruta", "en": "Road closed"}, {
        "es": "Ruta cortada por emergencia. Use vías alternativas y no se acerque a la zona.",
        "en": "Road closed by an emergency. Use other routes and keep away from the area."}, "normal"),
    ("verify", {"es": "Verificar datos", "en": "Verify number"}, {
        "es": "Protección Civil: responda SI {codigo} para confirmar que este sigue siendo su número.",
        "en": "Civil Protection: reply YES {codigo} to confirm this is still your number."}, "low"),
]


def content_hash(name: str, titles: dict[str, str], texts: dict[str, str], placeholders: list[dict[str, object]],
                 priority_hint: str | None, mode_hint: str | None) -> str:
    material = {"name": name, "titles": titles, "texts": texts, "placeholders": placeholders,
                "priority_hint": priority_hint, "mode_hint": mode_hint}
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def upgrade() -> None:
    op.create_table(
        "message_templates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("titles", postgresql.JSONB(), nullable=False),
        sa.Column("texts", postgresql.JSONB(), nullable=False),
        sa.Column("placeholders", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("priority_hint", sa.String(16), nullable=True),
        sa.Column("mode_hint", sa.String(16), nullable=True),
        sa.Column("state", sa.Enum("draft", "pending_approval", "approved", "rejected", "retired",
                                   name="templatestate", native_enum=False, create_constraint=True, length=24),
                  nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("approval_hash", sa.String(64), nullable=True),
        sa.Column("required_approvals", sa.Integer(), nullable=False, server_default="2"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey("operators.id", name="fk_message_templates_created_by"),
                  nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("name", name="uq_message_templates_name"),
        sa.CheckConstraint("required_approvals >= 2", name="ck_message_templates_two_approvals"),
    )
    op.create_table(
        "message_template_versions",
        sa.Column("template_id", sa.Integer(), sa.ForeignKey("message_templates.id", ondelete="CASCADE",
                                                             name="fk_message_template_versions_template"),
                  primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("titles", postgresql.JSONB(), nullable=False),
        sa.Column("texts", postgresql.JSONB(), nullable=False),
        sa.Column("placeholders", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("priority_hint", sa.String(16), nullable=True),
        sa.Column("mode_hint", sa.String(16), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("written_by_id", sa.Integer(), sa.ForeignKey("operators.id", name="fk_template_versions_written_by"),
                  nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "message_template_authors",
        sa.Column("template_id", sa.Integer(), sa.ForeignKey("message_templates.id", ondelete="CASCADE",
                                                             name="fk_message_template_authors_template"),
                  primary_key=True),
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id", name="fk_template_authors_operator"),
                  primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("role IN ('composer', 'editor', 'submitter')", name="ck_message_template_authors_role"),
    )
    op.create_table(
        "message_template_approvals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("template_id", sa.Integer(), sa.ForeignKey("message_templates.id", ondelete="CASCADE",
                                                             name="fk_message_template_approvals_template"),
                  nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id", name="fk_template_approvals_operator"),
                  nullable=False),
        sa.Column("approval_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        # one approval per operator and version, whatever two clicks race
        sa.UniqueConstraint("template_id", "version", "operator_id", name="uq_template_approvals_once"),
    )
    # Listed by template on the history page and counted for the current version at each approval.
    op.create_index("ix_message_template_approvals_template_id", "message_template_approvals", ["template_id"])

    op.add_column("alerts", sa.Column("template_id", sa.Integer(), nullable=True))
    op.add_column("alerts", sa.Column("template_version", sa.Integer(), nullable=True))
    op.add_column("alerts", sa.Column("template_values", postgresql.JSONB(), nullable=True))
    op.create_foreign_key("fk_alerts_template_id_message_templates", "alerts", "message_templates",
                          ["template_id"], ["id"])

    op.create_table(
        "operator_areas",
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id", ondelete="CASCADE",
                                                             name="fk_operator_areas_operator"), primary_key=True),
        sa.Column("zones", postgresql.ARRAY(sa.String(100)), nullable=False, server_default="{}"),
        sa.Column("groups", postgresql.ARRAY(sa.String(100)), nullable=False, server_default="{}"),
        sa.Column("set_by_id", sa.Integer(), sa.ForeignKey("operators.id", name="fk_operator_areas_set_by"),
                  nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("cardinality(zones) + cardinality(groups) > 0", name="ck_operator_areas_not_empty"),
    )

    templates = sa.table("message_templates", sa.column("id", sa.Integer), sa.column("name", sa.String),
                         sa.column("titles", postgresql.JSONB), sa.column("texts", postgresql.JSONB),
                         sa.column("placeholders", postgresql.JSONB), sa.column("priority_hint", sa.String),
                         sa.column("mode_hint", sa.String), sa.column("state", sa.String),
                         sa.column("version", sa.Integer), sa.column("approval_hash", sa.String),
                         sa.column("submitted_at", sa.DateTime(timezone=True)))
    versions = sa.table("message_template_versions", sa.column("template_id", sa.Integer),
                        sa.column("version", sa.Integer), sa.column("name", sa.String),
                        sa.column("titles", postgresql.JSONB), sa.column("texts", postgresql.JSONB),
                        sa.column("placeholders", postgresql.JSONB), sa.column("priority_hint", sa.String),
                        sa.column("mode_hint", sa.String), sa.column("content_hash", sa.String))
    bind = op.get_bind()
    for name, titles, texts, priority in SEEDS:
        digest = content_hash(name, titles, texts, [], priority, None)
        template_id = bind.execute(sa.insert(templates).values(
            name=name, titles=titles, texts=texts, placeholders=[], priority_hint=priority, mode_hint=None,
            state="pending_approval", version=1, approval_hash=digest, submitted_at=sa.func.now(),
        ).returning(templates.c.id)).scalar_one()
        bind.execute(sa.insert(versions).values(template_id=template_id, version=1, name=name, titles=titles,
                                                texts=texts, placeholders=[], priority_hint=priority, mode_hint=None,
                                                content_hash=digest))


def downgrade() -> None:
    op.drop_table("operator_areas")
    op.drop_constraint("fk_alerts_template_id_message_templates", "alerts", type_="foreignkey")
    op.drop_column("alerts", "template_values")
    op.drop_column("alerts", "template_version")
    op.drop_column("alerts", "template_id")
    op.drop_table("message_template_approvals")
    op.drop_table("message_template_authors")
    op.drop_table("message_template_versions")
    op.drop_table("message_templates")
