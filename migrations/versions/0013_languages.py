"""templates per candidate language: a language on the candidate, translations of the team's
templates, and translations of a step's subject and parts

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    # A constant server default: PostgreSQL adds it without rewriting the candidates table.
    op.add_column(
        "candidates",
        sa.Column("language", sa.String(16), nullable=False, server_default=""),
    )
    op.add_column(
        "steps", sa.Column("translations", JSON, nullable=False, server_default=sa.text("'{}'"))
    )
    op.create_table(
        "template_translations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["email_templates.id"],
            name="fk_template_translations_template_id_email_templates",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name="fk_template_translations_updated_by_id_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_template_translations"),
        sa.UniqueConstraint(
            "template_id", "language", name="uq_template_translations_template_id_language"
        ),
    )
    op.create_index(
        "ix_template_translations_template_id", "template_translations", ["template_id"]
    )


def downgrade():
    op.drop_index("ix_template_translations_template_id", table_name="template_translations")
    op.drop_table("template_translations")
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("translations")
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("language")
