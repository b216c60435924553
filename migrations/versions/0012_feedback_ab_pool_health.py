"""issue 14 (features 6 to 8): the free-text feedback answer after a rating, a step that needs the
recruiter's note (strengths), A/B subject variants per step (and the variant each mail got),
talent-pool health (sunset candidates and daily pool snapshots)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade():
    op.create_table(
        "feedback_answers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "message_id",
            sa.Integer(),
            sa.ForeignKey("messages.id", ondelete="SET NULL"),
            unique=True,
        ),
        sa.Column(
            "candidate_id",
            sa.Integer(),
            sa.ForeignKey("candidates.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id", ondelete="SET NULL")),
        sa.Column("stage", sa.String(100), nullable=False),
        sa.Column("rejection_reason", sa.String(200), nullable=False),
        sa.Column("rating", sa.Integer()),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_feedback_answers_created", "feedback_answers", ["created_at"])
    op.create_index("ix_feedback_answers_candidate", "feedback_answers", ["candidate_id"])

    op.create_table(
        "pool_snapshots",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("cold", sa.Integer(), nullable=False),
        sa.Column("sunset", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
    )

    # Plain ADD COLUMNs with a default for the rows already there: no table copy on either
    # database, however many steps and candidates exist.
    op.add_column(
        "steps",
        sa.Column("require_strengths", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "step_variants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "step_id", sa.Integer(), sa.ForeignKey("steps.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("preheader", sa.Text(), nullable=False),
        sa.UniqueConstraint("step_id", "position", name="uq_step_variants_step_id_position"),
    )
    for name, default in (
        ("ab_sample_percent", "0"),
        ("ab_decide_after_seconds", "0"),
        ("ab_min_sample", "0"),
    ):
        op.add_column(
            "steps", sa.Column(name, sa.Integer(), nullable=False, server_default=default)
        )
    op.add_column(
        "steps", sa.Column("ab_metric", sa.String(10), nullable=False, server_default="opens")
    )
    op.add_column("steps", sa.Column("ab_started_at", sa.DateTime(), nullable=True))
    op.add_column("steps", sa.Column("ab_decided_at", sa.DateTime(), nullable=True))
    op.add_column("steps", sa.Column("ab_winner", sa.Integer(), nullable=True))
    op.add_column(
        "steps", sa.Column("ab_result", JSON_TYPE, nullable=False, server_default=sa.text("'{}'"))
    )
    # Nullable, no default: adding it rewrites no rows, however big the ledger.
    op.add_column("messages", sa.Column("ab_variant", sa.Integer(), nullable=True))
    op.add_column("candidates", sa.Column("sunset_at", sa.DateTime(), nullable=True))
    op.add_column(
        "candidates",
        sa.Column("sunset_reason", sa.String(200), nullable=False, server_default=""),
    )


def downgrade():
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("sunset_reason")
        batch.drop_column("sunset_at")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("ab_variant")
    with op.batch_alter_table("steps") as batch:
        for name in (
            "ab_result", "ab_winner", "ab_decided_at", "ab_started_at", "ab_metric",
            "ab_min_sample", "ab_decide_after_seconds", "ab_sample_percent", "require_strengths",
        ):  # fmt: skip
            batch.drop_column(name)
    op.drop_table("step_variants")
    op.drop_table("pool_snapshots")
    op.drop_table("feedback_answers")
