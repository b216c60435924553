"""broadcasts record when they were sent in a column; suppressions keep a folded mailbox hash;
engagement scores are kept as points that never need decaying

Revision ID: 0005
Revises: 0004
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# nurture.services.engagement: points = score * 2 ** (days since EPOCH / HALF_LIFE_DAYS).
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
HALF_LIFE_DAYS = 30.0


def _growth() -> float:
    days = (datetime.now(UTC) - EPOCH).total_seconds() / 86400
    return 2.0 ** (days / HALF_LIFE_DAYS)


def upgrade():
    # A score recomputed by the old periodic job is the score now; as points it is grown by now.
    # ALTER TABLE ... RENAME COLUMN on both databases: no copy of the table.
    op.alter_column("candidates", "engagement_score", new_column_name="engagement_points")
    op.execute(
        sa.text("UPDATE candidates SET engagement_points = engagement_points * :growth")
        .bindparams(growth=_growth())
    )
    op.add_column("campaigns", sa.Column("sent_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("suppressions") as batch:
        batch.add_column(
            sa.Column("mailbox_hash", sa.String(64), nullable=False, server_default="")
        )
        batch.create_index("ix_suppressions_mailbox_hash", ["mailbox_hash"])
    # Broadcasts sent before this revision kept the time in entry_filter["sent_at"].
    bind = op.get_bind()
    campaigns = sa.table(
        "campaigns",
        sa.column("id", sa.Integer()),
        sa.column("entry_filter", sa.JSON()),
        sa.column("sent_at", sa.DateTime()),
    )
    for campaign_id, entry in bind.execute(sa.select(campaigns.c.id, campaigns.c.entry_filter)):
        if not isinstance(entry, dict) or "sent_at" not in entry:
            continue
        sent = datetime.fromisoformat(entry.pop("sent_at")).astimezone(UTC).replace(tzinfo=None)
        bind.execute(
            campaigns.update()
            .where(campaigns.c.id == campaign_id)
            .values(sent_at=sent, entry_filter=entry)
        )


def downgrade():
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_index("ix_suppressions_mailbox_hash")
        batch.drop_column("mailbox_hash")
    op.drop_column("campaigns", "sent_at")
    op.execute(
        sa.text("UPDATE candidates SET engagement_points = engagement_points / :growth")
        .bindparams(growth=_growth())
    )
    op.alter_column("candidates", "engagement_points", new_column_name="engagement_score")
