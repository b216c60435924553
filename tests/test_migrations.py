"""Migrations: the schema they build is the one the models describe, and data moves with them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from nurture import create_app
from nurture.config import TestConfig
from nurture.extensions import db
from nurture.models.base import Base


def _app(database_url: str, tmp_path):
    return create_app(
        TestConfig, DATABASE_URL=database_url, INSTANCE_PATH=str(tmp_path / "instance")
    )


# SQLite cannot reflect the lower() indexes; they are listed below as migration-only.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_the_migrated_schema_matches_the_models(database_url: str, tmp_path) -> None:
    app = _app(database_url, tmp_path)
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": False, "compare_server_default": False}
            )
            differences = compare_metadata(context, Base.metadata)
        db.engine.dispose()
    # Indexes that only a migration can express (partial, GIN) are written there on purpose.
    missing = [
        d
        for d in differences
        if not (d[0] == "remove_index" and d[1].name in _MIGRATION_ONLY_INDEXES)
    ]
    assert missing == []


# Declared in migrations only: partial and expression indexes the models do not describe.
_MIGRATION_ONLY_INDEXES = {
    "ix_candidates_role", "ix_candidates_stage", "ix_candidates_last_clicked",
    "ix_candidates_last_replied", "ix_candidates_created", "ix_candidates_skills",
    "ix_events_human", "ix_messages_campaign_id", "uq_enrolments_active",
    "ix_candidates_lower_stage", "ix_candidates_lower_role", "ix_candidates_lower_location",
    "ix_candidates_lower_rejection_reason",
}  # fmt: skip


def test_0005_keeps_a_broadcasts_sent_time_and_the_scores(database_url: str, tmp_path) -> None:
    app = _app(database_url, tmp_path)
    with app.app_context():
        upgrade(revision="0004")
        now = datetime(2026, 11, 1, 9, 30)
        with db.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO campaigns (name, kind, status, entry_type, entry_value, "
                    "sender_name, sender_email, sender_is_recruiter, send_window, exit_on, "
                    "topic, entry_filter, reentry, local_time, description, created_at, "
                    "updated_at) VALUES ('News', 'broadcast', 'active', 'tag', 'alumni', '', '', "
                    "true, '{}', '[]', 'newsletter', :entry, 'never', false, '', :now, :now)"
                ),
                {"entry": '{"sent_at": "2026-11-01T09:30:00+00:00", "delay": "P1D"}', "now": now},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO candidates (email, first_name, last_name, timezone, location, "
                    "role, stage, rejection_reason, strengths, skills, source, recruiter_name, "
                    "recruiter_email, consent_basis, consent_source, attributes, status, "
                    "engagement_score, topics, tracking_opt_out, soft_bounces, created_at, "
                    "updated_at) VALUES ('ana@example.org', '', '', '', '', '', '', '', '', "
                    "'[]', '', '', '', '', '', '{}', 'active', 2.5, '{}', false, 0, :now, :now)"
                ),
                {"now": now},
            )
        upgrade()
        from nurture.models import Campaign

        campaign = db.session.scalar(sa.select(Campaign))
        assert campaign.sent_at == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
        assert campaign.entry_filter == {"delay": "P1D"}
        # The score the old hourly job had computed is the score now, kept as points.
        from nurture.core.audience.engagement import score_of
        from nurture.models import Candidate

        ana = db.session.scalar(sa.select(Candidate))
        assert score_of(ana, datetime.now(UTC)) == 2.5
        db.session.remove()
        db.engine.dispose()


def test_0008_keeps_openings_their_matches_and_imports(database_url: str, tmp_path) -> None:
    app = _app(database_url, tmp_path)
    with app.app_context():
        upgrade(revision="0006")
        now = datetime(2026, 11, 1, 9, 30)
        with db.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO candidates (id, email, first_name, last_name, timezone, location, "
                    "role, stage, rejection_reason, strengths, skills, source, recruiter_name, "
                    "recruiter_email, consent_basis, consent_source, attributes, status, "
                    "engagement_points, topics, tracking_opt_out, soft_bounces, created_at, "
                    "updated_at) VALUES (7, 'ana@example.org', 'Ana', '', '', '', '', '', '', '', "
                    "'[\"go\"]', '', '', '', '', '', '{}', 'active', 0, '{}', false, 0, :now, :now)"
                ),
                {"now": now},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO job_openings (id, title, role_family, skills, location, remote, "
                    "url, summary, created_at) VALUES (41, 'Go engineer', 'engineering', "
                    "'[\"go\"]', 'Lisbon', true, 'https://jobs.example.org/41', '', :now)"
                ),
                {"now": now},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO job_matches (id, job_id, candidate_id, score, reasons, excluded, "
                    "created_at) VALUES (5, 41, 7, 72.5, '[\"1 of 1 skills: go\"]', true, :now)"
                ),
                {"now": now},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO import_jobs (id, filename, content, mapping, tags, status, "
                    "total_rows, processed_rows, created_count, updated_count, rejected_count, "
                    "errors, created_at, heartbeat_at) VALUES (9, 'people.csv', :csv, "
                    "'{\"email\": \"email\"}', '[\"pool\"]', 'running', 1, 0, 0, 0, 0, '[]', "
                    ":now, :now)"
                ),
                {"now": now, "csv": "email\nana@x.org\n"},
            )
        upgrade()
        from nurture.models import Import, Opening, OpeningMatch

        opening = db.session.get(Opening, 41)
        assert (opening.title, opening.skills, opening.remote) == ("Go engineer", ["go"], True)
        match = db.session.scalar(sa.select(OpeningMatch))
        assert (match.id, match.opening_id, match.candidate_id, match.score) == (5, 41, 7, 72.5)
        assert match.excluded is True and match.reasons == ["1 of 1 skills: go"]
        upload = db.session.get(Import, 9)
        assert (upload.filename, upload.status, upload.mapping) == (
            "people.csv",
            "running",
            {"email": "email"},
        )
        assert upload.heartbeat_at == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
        # New rows are numbered after the ones that came along.
        later = Opening(title="Next", skills=["go"], created_at=datetime.now(UTC))
        db.session.add(later)
        db.session.commit()
        assert later.id == 42
        tables = set(sa.inspect(db.engine).get_table_names())
        assert {"openings", "opening_matches", "imports"} <= tables
        assert not {"job_openings", "job_matches", "import_jobs"} & tables
        db.session.remove()
        db.engine.dispose()
