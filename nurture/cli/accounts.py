"""``nurture users`` and ``nurture tokens``: admin accounts and API tokens."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from nurture import runtime
from nurture.extensions import db


@click.group("users")
def users_cli() -> None:
    """Admin accounts."""


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "editor", "viewer"]), default="viewer")
@click.option("--name", default="")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="NURTURE_NEW_USER_PASSWORD",
)
@with_appcontext
def create_user_command(email: str, role: str, name: str, password: str) -> None:
    """Create a user who can sign in to the admin."""
    from nurture.core.accounts.users import create_user
    from nurture.core.errors import Conflict, ValidationError

    try:
        user = create_user(db.session, email, password, role, runtime.now(), name=name)
    except ValidationError as exc:
        raise click.ClickException(
            "; ".join(f"{field}: {problem}" for field, problem in exc.fields.items())
        ) from None
    except Conflict as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"created {user.role} {user.email} (id {user.id})")


@users_cli.command("set-password")
@click.argument("email")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="NURTURE_NEW_USER_PASSWORD",
)
@with_appcontext
def set_password_command(email: str, password: str) -> None:
    """Give a user a new password; every session they have open is signed out."""
    from sqlalchemy import select

    from nurture.core.accounts.users import set_password
    from nurture.core.errors import ValidationError
    from nurture.models import User

    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user {email}")
    try:
        set_password(user, password)
    except ValidationError as exc:
        raise click.ClickException("; ".join(exc.fields.values())) from None
    db.session.commit()
    click.echo(f"new password set for {user.email}; their sessions are signed out")


@click.group("tokens")
def tokens_cli() -> None:
    """API tokens."""


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="cli", help="What the token is for.")
@with_appcontext
def create_token_command(email: str, name: str) -> None:
    """Create an API token for a user; the token is printed once, on the last line."""
    from sqlalchemy import select

    from nurture.core.accounts.users import create_token
    from nurture.models import User

    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user {email}; create one with `nurture users create`")
    token = create_token(db.session, user, name, runtime.now())
    db.session.commit()
    click.echo(f"token for {user.email} ({user.role}); it is shown only now:", err=True)
    click.echo(token)
