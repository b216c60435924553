"""issue 14: referrals (and candidates.referred_by_id), outbound webhooks and their delivery log,
replies handed to a person, the ATS events rejection promptness is measured from, team settings

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade():
    op.create_table(
        "ats_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "candidate_id",
            sa.Integer(),
            sa.ForeignKey("candidates.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("recruiter_email", sa.String(320), nullable=False),
        sa.Column("recruiter_name", sa.String(200), nullable=False),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id", ondelete="SET NULL")),
        sa.Column("enrolled", sa.Integer(), nullable=False),
    )
    op.create_index("ix_ats_events_type_time", "ats_events", ["type", "received_at"])
    op.create_index("ix_ats_events_candidate", "ats_events", ["candidate_id", "received_at"])

    op.create_table(
        "replies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "candidate_id",
            sa.Integer(),
            sa.ForeignKey("candidates.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("messages.id", ondelete="SET NULL")),
        sa.Column("event_id", sa.Integer(), sa.ForeignKey("events.id", ondelete="SET NULL")),
        sa.Column("mail_message_id", sa.String(255), nullable=False),
        sa.Column("from_address", sa.String(320), nullable=False),
        sa.Column("from_name", sa.String(200), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("latest", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary()),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("handled_at", sa.DateTime()),
        sa.Column("handled_by_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("forward_to", sa.String(320), nullable=False),
        sa.Column("forward_state", sa.String(20), nullable=False),
        sa.Column("forward_attempts", sa.Integer(), nullable=False),
        sa.Column("forward_next_at", sa.DateTime()),
        sa.Column("forwarded_at", sa.DateTime()),
        sa.Column("forward_error", sa.Text(), nullable=False),
    )
    op.create_index("ix_replies_state", "replies", ["state", "received_at"])
    op.create_index("ix_replies_candidate", "replies", ["candidate_id", "received_at"])
    op.create_index("ix_replies_forward", "replies", ["forward_state", "forward_next_at"])

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("events", JSON_TYPE, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "endpoint_id",
            sa.Integer(),
            sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        ),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "candidate_id", sa.Integer(), sa.ForeignKey("candidates.id", ondelete="SET NULL")
        ),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime()),
        sa.Column("claimed_at", sa.DateTime()),
        sa.Column("last_status", sa.Integer()),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("last_response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime()),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_created", "webhook_deliveries", ["created_at"])
    op.create_index("ix_webhook_deliveries_candidate", "webhook_deliveries", ["candidate_id"])

    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "referrer_id",
            sa.Integer(),
            sa.ForeignKey("candidates.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "candidate_id", sa.Integer(), sa.ForeignKey("candidates.id", ondelete="SET NULL")
        ),
        sa.Column(
            "opening_id", sa.Integer(), sa.ForeignKey("openings.id", ondelete="SET NULL")
        ),
        sa.Column("opening_title", sa.String(200), nullable=False),
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("messages.id", ondelete="SET NULL")),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id", ondelete="SET NULL")),
        sa.Column("relation", sa.String(100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("consent", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("consented_at", sa.DateTime()),
        sa.Column("hired_at", sa.DateTime()),
        sa.Column("thanked_at", sa.DateTime()),
        sa.Column(
            "consent_enrolment_id",
            sa.Integer(),
            sa.ForeignKey("enrolments.id", ondelete="SET NULL"),
        ),
        sa.Column(
            "thanks_enrolment_id",
            sa.Integer(),
            sa.ForeignKey("enrolments.id", ondelete="SET NULL"),
        ),
    )
    op.create_index("ix_referrals_referrer", "referrals", ["referrer_id", "created_at"])
    op.create_index("ix_referrals_candidate", "referrals", ["candidate_id"])
    op.create_index("ix_referrals_campaign", "referrals", ["campaign_id"])
    op.create_index("ix_referrals_created", "referrals", ["created_at"])

    op.create_table(
        "team_settings",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", JSON_TYPE, nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL")),
    )

    # A nullable column with a reference: ALTER TABLE … ADD COLUMN on both databases, no copy of
    # the candidates table (Alembic would copy it on SQLite to add the constraint). Candidate rows
    # are never deleted (erasure keeps the row), so the reference needs no ON DELETE rule.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE candidates ADD COLUMN referred_by_id INTEGER REFERENCES candidates (id)"
        )
    else:
        op.add_column("candidates", sa.Column("referred_by_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_candidates_referred_by_id_candidates",
            "candidates",
            "candidates",
            ["referred_by_id"],
            ["id"],
        )
    op.create_index("ix_candidates_referred_by_id", "candidates", ["referred_by_id"])


def downgrade():
    op.drop_index("ix_candidates_referred_by_id", "candidates")
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("referred_by_id")
    for table in (
        "team_settings",
        "referrals",
        "webhook_deliveries",
        "webhook_endpoints",
        "replies",
        "ats_events",
    ):
        op.drop_table(table)
