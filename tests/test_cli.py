"""The `nurture` command: users, tokens, the scheduler's single pass and demo data."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from nurture.extensions import db
from nurture.models import Campaign, Candidate, Enrolment, User


def test_users_and_tokens_are_created_from_the_command_line(app: Flask) -> None:
    runner = app.test_cli_runner()
    made = runner.invoke(
        args=[
            "users",
            "create",
            "ops@example.com",
            "--role",
            "editor",
            "--password",
            "a long enough password",
        ]
    )
    assert made.exit_code == 0, made.output
    assert "created editor ops@example.com" in made.output
    user = db.session.scalar(select(User).where(User.email == "ops@example.com"))
    assert user.role == "editor" and user.password_hash.startswith("scrypt:")

    issued = runner.invoke(args=["tokens", "create", "ops@example.com", "--name", "ats"])
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip().splitlines()[-1]
    answer = app.test_client().post(
        "/api/v1/candidates",
        json={"email": "x@example.org"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201


def test_bad_user_input_is_refused_with_the_field(app: Flask) -> None:
    runner = app.test_cli_runner()
    short = runner.invoke(args=["users", "create", "ops@example.com", "--password", "short"])
    assert short.exit_code != 0 and "password" in short.output
    bad = runner.invoke(args=["users", "create", "not-an-email", "--password", "long enough pw"])
    assert bad.exit_code != 0 and "email" in bad.output
    missing = runner.invoke(args=["tokens", "create", "nobody@example.com"])
    assert missing.exit_code != 0 and "no user" in missing.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_demo_data_is_seeded_once(app: Flask) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(args=["demo"])
    assert "there already" in second.output
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 1
    campaign = db.session.scalar(select(Campaign))
    assert campaign.status == "active" and len(campaign.steps) == 3
    candidates = db.session.scalar(select(func.count()).select_from(Candidate))
    assert candidates == db.session.scalar(select(func.count()).select_from(Enrolment)) >= 3
