"""The ``nurture`` command: web app, worker, scheduler, the whole system, users, tokens, demo."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from nurture.extensions import db
from nurture.cli.imports import import_command


def init_app(app: Flask) -> None:
    """Register the commands on the app's CLI."""
    from nurture.cli.dkim import dkim_command
    from nurture.tasks.inbound import inbound_command

    app.cli.add_command(dkim_command)
    app.cli.add_command(inbound_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(scheduler_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(web_command)
    app.cli.add_command(demo_command)
    app.cli.add_command(import_command)


def _create_app() -> Flask:
    from nurture import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=True)
def cli() -> None:
    """nurture: talent-network email campaigns."""


def main() -> None:
    """Entry point of the ``nurture`` console script."""
    cli(prog_name="nurture")


def _now():
    return current_app.extensions["nurture.runtime"].now()


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
    from nurture.core.errors import Conflict, ValidationError
    from nurture.core.accounts.users import create_user

    try:
        user = create_user(db.session, email, password, role, _now(), name=name)
    except ValidationError as exc:
        raise click.ClickException(
            "; ".join(f"{field}: {problem}" for field, problem in exc.fields.items())
        ) from None
    except Conflict as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"created {user.role} {user.email} (id {user.id})")


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

    from nurture.models import User
    from nurture.core.accounts.users import create_token

    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user {email}; create one with `nurture users create`")
    token = create_token(db.session, user, name, _now())
    db.session.commit()
    click.echo(f"token for {user.email} ({user.role}); it is shown only now:", err=True)
    click.echo(token)


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@with_appcontext
def scheduler_command(once: bool) -> None:
    """Run the scheduler: find due sends and enqueue them, every few seconds."""
    from nurture.tasks.scheduling import run_periodic, run_tick

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    interval = float(app.config["SCHEDULER_INTERVAL"])
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    housekeeping: dict = {}
    while True:
        try:
            result = run_tick(app)
            for name in run_periodic(app, housekeeping):
                app.logger.debug("scheduler: ran %s", name)
            if result.created or result.enqueued:
                click.echo(f"scheduler: {result.created} new messages, {result.enqueued} enqueued")
        except Exception as exc:  # noqa: BLE001 - a down Redis or DB must not end the loop
            click.echo(f"scheduler: pass failed: {exc}", err=True)
            if once:
                raise
        if once or stopping:
            return
        deadline = time.monotonic() + interval
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.2)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
def worker_command(burst: bool) -> None:
    """Run a worker that sends queued mail."""
    from nurture.tasks.worker import run_worker

    run_worker(burst=burst)


@click.command("web")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
def web_command(host: str, port: int) -> None:
    """Serve the admin, API and tracking paths (use gunicorn wsgi:app in production)."""
    from werkzeug.serving import run_simple

    run_simple(
        host,
        port,
        current_app._get_current_object(),
        threaded=True,  # type: ignore[attr-defined]
        use_reloader=False,
    )


@click.command("demo")
@with_appcontext
def demo_command() -> None:
    """Seed demo data (candidates, a 3-step drip, an admin) unless it is there already."""
    from nurture.dev.demo import seed_demo

    result = seed_demo(db.session, current_app.config, _now(), Path(current_app.instance_path))
    db.session.commit()
    click.echo(result.summary())


@cli.command("up")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--demo/--no-demo", default=True, help="Seed demo data on an empty database.")
def up_command(host: str, port: int, demo: bool) -> None:
    """Start everything: migrations, embedded Redis and SMTP capture, web, worker, scheduler."""
    from nurture.dev.system import System

    System(host=host, port=port, demo=demo).run()


if __name__ == "__main__":  # pragma: no cover
    main()
