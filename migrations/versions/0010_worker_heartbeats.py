"""sending workers keep a heartbeat, and a claimed message names the worker that claimed it, so
a dead worker's mail goes back to the queue within a minute instead of after the stuck timer

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "worker_heartbeats",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("beat_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_worker_heartbeats"),
    )
    # Nullable, no default: adding it rewrites no rows, however big the ledger.
    op.add_column("messages", sa.Column("claimed_by", sa.String(100), nullable=True))


def downgrade():
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("claimed_by")
    op.drop_table("worker_heartbeats")
