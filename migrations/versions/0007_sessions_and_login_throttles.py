"""sessions can be revoked (a nonce per user, in every session cookie) and sign-in failures are
throttled per (account, client) and per client instead of locking an account for everyone

Revision ID: 0007
Revises: 0006
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

users = sa.table("users", sa.column("id", sa.Integer), sa.column("session_nonce", sa.String))


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(
            sa.Column("session_nonce", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.drop_column("failed_logins")
        batch_op.drop_column("locked_until")
    # Cookies issued before carry no nonce, so everyone signs in once more.
    bind = op.get_bind()
    for (user_id,) in bind.execute(sa.select(users.c.id)).all():
        bind.execute(
            users.update().where(users.c.id == user_id).values(session_nonce=secrets.token_hex(16))
        )
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )


def downgrade():
    op.drop_table("login_throttles")
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(), nullable=True))
        batch_op.drop_column("session_nonce")
