"""a reply ends a drip by the campaign's exit rules ("replied", on by default); campaigns made
before, whose replies always ended them, get the rule so nothing changes for them

Revision ID: 0006
Revises: 0005
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

campaigns = sa.table("campaigns", sa.column("id", sa.Integer), sa.column("exit_on", sa.JSON))


def upgrade():
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.alter_column(
            "exit_on", server_default='["hired", "reapplied", "replied"]', existing_nullable=False
        )
    bind = op.get_bind()
    for campaign_id, exit_on in bind.execute(sa.select(campaigns.c.id, campaigns.c.exit_on)):
        rules = json.loads(exit_on) if isinstance(exit_on, str) else list(exit_on or [])
        if "replied" not in rules:
            bind.execute(
                campaigns.update()
                .where(campaigns.c.id == campaign_id)
                .values(exit_on=[*rules, "replied"])
            )


def downgrade():
    pass  # the rule is harmless to the old code, which ended drips on any reply anyway
