"""the admin's daily journeys: exclusive campaign groups and a segment entry for any drip;
personal steps the frequency cap never holds; template versions; stages as a managed list
(today's spellings merged); a note on events (why they unsubscribed, a comment on a rating);
case-insensitive text matching served by lower() indexes

Revision ID: 0011
Revises: 0010
"""

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

candidates = sa.table("candidates", sa.column("stage", sa.String))
stages = sa.table(
    "stages",
    sa.column("name", sa.String),
    sa.column("position", sa.Integer),
    sa.column("created_at", sa.DateTime),
)
steps = sa.table("steps", sa.column("template", sa.String), sa.column("category", sa.String))
campaigns = sa.table(
    "campaigns",
    sa.column("entry_type", sa.String),
    sa.column("entry_value", sa.String),
    sa.column("exclusive_group", sa.String),
)

# Where a stage sits in a pipeline, by the words recruiters write (later ones are further on).
ORDER = ("applied", "screen", "phone", "assessment", "take-home", "technical", "interview",
         "portfolio", "case", "onsite", "on-site", "panel", "final", "reference", "offer")  # fmt: skip


def stage_key(name: str) -> str:
    """The same stage however it is spelt: "On-site", "onsite " and "On site" are one."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _rank(name: str) -> int:
    lowered = name.lower()
    found = [i for i, word in enumerate(ORDER) if word in lowered]
    return max(found) if found else len(ORDER)


def upgrade():
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(
            sa.Column("exclusive_group", sa.String(60), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("entry_segment_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_campaigns_entry_segment_id_segments",
            "segments",
            ["entry_segment_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("steps") as batch:
        batch.add_column(
            sa.Column("category", sa.String(20), nullable=False, server_default="regular")
        )
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "email_template_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False, server_default=""),
        sa.Column("html", sa.Text(), nullable=False, server_default=""),
        sa.Column("text", sa.Text(), nullable=False, server_default=""),
        sa.Column("note", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column(
            "created_by_id",
            sa.Integer(),
            sa.ForeignKey(
                "users.id",
                ondelete="SET NULL",
                name="fk_email_template_versions_created_by_id_users",
            ),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_email_template_versions"),
        sa.UniqueConstraint("name", "number", name="uq_email_template_versions_name_number"),
    )
    op.create_index("ix_email_template_versions_name", "email_template_versions", ["name"])
    op.create_table(
        "stages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stages"),
        sa.UniqueConstraint("name", name="uq_stages_name"),
    )
    # Case-insensitive "is" / "is one of" on the fields segments compare most.
    for column in ("stage", "role", "location", "rejection_reason"):
        op.create_index(
            f"ix_candidates_lower_{column}", "candidates", [sa.text(f"lower({column})")]
        )

    bind = op.get_bind()
    _merge_stage_spellings(bind)
    # The starter follow-up is a recruiter's personal note: never held by the frequency cap.
    bind.execute(
        steps.update().where(steps.c.template == "rejection_followup").values(category="personal")
    )
    # Drips on a rejection send one follow-up per rejection, whatever else is running.
    bind.execute(
        campaigns.update()
        .where(
            campaigns.c.entry_type == "ats_event",
            campaigns.c.entry_value == "candidate.rejected",
        )
        .values(exclusive_group="rejection-follow-up")
    )


def _merge_stage_spellings(bind) -> None:
    """One spelling per stage: the most common one of each group, then every candidate on it."""
    spellings: dict[str, Counter] = defaultdict(Counter)
    for stage, count in bind.execute(
        sa.select(candidates.c.stage, sa.func.count()).group_by(candidates.c.stage)
    ):
        name = " ".join((stage or "").split())
        if name:
            spellings[stage_key(name)][stage] += count
    now = datetime.now(UTC).replace(tzinfo=None)
    chosen = []
    for group in spellings.values():
        # Most candidates first; between equals the lower-case one, as most ATSs write it.
        best = sorted(group.items(), key=lambda item: (-item[1], item[0] != item[0].lower()))[0][0]
        best = " ".join(best.split())
        chosen.append(best)
        for spelling in group:
            if spelling != best:
                bind.execute(
                    candidates.update().where(candidates.c.stage == spelling).values(stage=best)
                )
    for position, name in enumerate(sorted(chosen, key=lambda n: (_rank(n), n.lower()))):
        bind.execute(stages.insert().values(name=name, position=position, created_at=now))


def downgrade():
    for column in ("stage", "role", "location", "rejection_reason"):
        op.drop_index(f"ix_candidates_lower_{column}", "candidates")
    op.drop_table("stages")
    op.drop_index("ix_email_template_versions_name", "email_template_versions")
    op.drop_table("email_template_versions")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("note")
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("category")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_constraint("fk_campaigns_entry_segment_id_segments", type_="foreignkey")
        batch.drop_column("entry_segment_id")
        batch.drop_column("exclusive_group")
