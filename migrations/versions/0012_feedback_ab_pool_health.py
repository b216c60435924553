"""issue 14 (features 6 to 8): the free-text feedback answer after a rating, a step that needs the
recruiter's note (strengths), talent-pool health (sunset candidates and daily pool snapshots)

Revision ID: 0012
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


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
    op.add_column("candidates", sa.Column("sunset_at", sa.DateTime(), nullable=True))
    op.add_column(
        "candidates",
        sa.Column("sunset_reason", sa.String(200), nullable=False, server_default=""),
    )


def downgrade():
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("sunset_reason")
        batch.drop_column("sunset_at")
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("require_strengths")
    op.drop_table("pool_snapshots")
    op.drop_table("feedback_answers")
