"""one meaning per word: job_openings → openings, job_matches → opening_matches (job_id →
opening_id), import_jobs → imports; every row is kept with its id

The new tables are created, filled from the old ones and the old ones dropped, rather than
renamed in place: that gives the constraints their new names on SQLite too (where a renamed
table keeps the names it was created with) and the same steps on both backends.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

OPENING_COLUMNS = (
    "id, title, role_family, skills, location, remote, url, summary, campaign_id, created_at"
)
MATCH_COLUMNS = "id, {opening}, candidate_id, score, reasons, excluded, created_at"
IMPORT_COLUMNS = (
    "id, filename, content, mapping, tags, status, total_rows, processed_rows, created_count, "
    "updated_count, rejected_count, errors, created_by_id, created_at, heartbeat_at, finished_at"
)


def _openings(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("role_family", sa.String(length=100), nullable=False),
        sa.Column("skills", JSON, nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("remote", sa.Boolean(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"],
            name=op.f(f"fk_{name}_campaign_id_campaigns"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )  # fmt: skip


def _matches(name: str, column: str, openings: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(column, sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["candidates.id"],
            name=op.f(f"fk_{name}_candidate_id_candidates"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            [column], [f"{openings}.id"],
            name=op.f(f"fk_{name}_{column}_{openings}"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint(column, "candidate_id", name=op.f(f"uq_{name}_{column}_candidate_id")),
    )  # fmt: skip


def _imports(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("mapping", JSON, nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("processed_rows", sa.Integer(), nullable=False),
        sa.Column("created_count", sa.Integer(), nullable=False),
        sa.Column("updated_count", sa.Integer(), nullable=False),
        sa.Column("rejected_count", sa.Integer(), nullable=False),
        sa.Column("errors", JSON, nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"],
            name=op.f(f"fk_{name}_created_by_id_users"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )  # fmt: skip


def _copy(source: str, target: str, columns: str, target_columns: str | None = None) -> None:
    op.execute(f"INSERT INTO {target} ({target_columns or columns}) SELECT {columns} FROM {source}")


def _restart_ids(*tables: str) -> None:
    """PostgreSQL: the new tables' id sequences continue after the ids the rows brought along."""
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite picks max(id) + 1 by itself
    for table in tables:
        op.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        )


def upgrade():
    _openings("openings")
    _matches("opening_matches", "opening_id", "openings")
    _imports("imports")
    _copy("job_openings", "openings", OPENING_COLUMNS)
    _copy(
        "job_matches", "opening_matches",
        MATCH_COLUMNS.format(opening="job_id"), MATCH_COLUMNS.format(opening="opening_id"),
    )  # fmt: skip
    _copy("import_jobs", "imports", IMPORT_COLUMNS)
    op.drop_table("job_matches")
    op.drop_table("job_openings")
    op.drop_table("import_jobs")
    _restart_ids("openings", "opening_matches", "imports")


def downgrade():
    _openings("job_openings")
    _matches("job_matches", "job_id", "job_openings")
    _imports("import_jobs")
    _copy("openings", "job_openings", OPENING_COLUMNS)
    _copy(
        "opening_matches", "job_matches",
        MATCH_COLUMNS.format(opening="opening_id"), MATCH_COLUMNS.format(opening="job_id"),
    )  # fmt: skip
    _copy("imports", "import_jobs", IMPORT_COLUMNS)
    op.drop_table("opening_matches")
    op.drop_table("openings")
    op.drop_table("imports")
    _restart_ids("job_openings", "job_matches", "import_jobs")
