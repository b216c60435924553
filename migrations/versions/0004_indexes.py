"""indexes for segments, search and job matching; one active enrolment per campaign

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_candidates_role", "candidates", ["role"])
    op.create_index("ix_candidates_stage", "candidates", ["stage"])
    op.create_index("ix_candidates_last_clicked", "candidates", ["last_clicked_at"])
    op.create_index("ix_candidates_last_replied", "candidates", ["last_replied_at"])
    op.create_index("ix_candidates_created", "candidates", ["created_at"])
    # Skills are a JSONB list on PostgreSQL: GIN serves "has any of these skills" (?|).
    op.create_index("ix_candidates_skills", "candidates", ["skills"], postgresql_using="gin")
    op.create_index(
        "ix_events_human", "events", ["kind", "created_at", "message_id", "candidate_id"],
        postgresql_where=sa.text("NOT machine"), sqlite_where=sa.text("machine = 0"),
    )
    op.create_index("ix_messages_campaign_id", "messages", ["campaign_id", "id"])
    # Two ATS webhooks for the same person at once must not start the same drip twice.
    op.create_index(
        "uq_enrolments_active", "enrolments", ["campaign_id", "candidate_id"], unique=True,
        postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"),
    )


def downgrade():
    op.drop_index("uq_enrolments_active", "enrolments")
    op.drop_index("ix_messages_campaign_id", "messages")
    op.drop_index("ix_events_human", "events")
    op.drop_index("ix_candidates_skills", "candidates")
    for name in ("created", "last_replied", "last_clicked", "stage", "role"):
        op.drop_index(f"ix_candidates_{name}", "candidates")
