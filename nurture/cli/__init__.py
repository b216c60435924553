"""The ``nurture`` command: web app, worker, scheduler, the whole system, users, tokens, demo."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from nurture.config import ConfigError


def _app_commands() -> tuple[click.Command, ...]:
    """The commands that run inside an app (each made once, so both groups share them)."""
    from flask_migrate.cli import db as db_cli

    from nurture.cli import accounts, data, dkim, imports, processes

    return (
        dkim.dkim_command,
        processes.inbound_command,
        accounts.users_cli,
        accounts.tokens_cli,
        processes.scheduler_command,
        processes.worker_command,
        processes.web_command,
        data.demo_command,
        imports.import_command,
        db_cli,
    )


def init_app(app: Flask) -> None:
    """Register the commands that run inside an app on the app's CLI."""
    for command in _app_commands():
        if command.name != "db":  # Flask-Migrate registers its own
            app.cli.add_command(command)


def _create_app() -> Flask:
    from nurture import create_app

    return create_app()


class NurtureGroup(FlaskGroup):
    """Flask's group, listing nurture's commands without building the app.

    Flask lists an app's commands by loading the app, which fails (with a traceback) when a
    setting is missing; here every command is on the group itself and loads the app only when
    it runs, so ``nurture --help`` works on a fresh machine.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Our commands and plugins', without loading the app."""
        self._load_plugin_commands()
        return sorted(click.Group.list_commands(self, ctx))


@click.group(cls=NurtureGroup, create_app=_create_app, add_default_commands=True)
def cli() -> None:
    """nurture: talent-network email campaigns."""


def _in_app(command: click.Command) -> click.Command:
    """Make ``command`` push the app's context when it runs (FlaskGroup did that on lookup)."""
    callback: Callable | None = command.callback
    if callback is not None and not getattr(callback, "_nurture_in_app", False):
        command.callback = with_appcontext(callback)
        command.callback._nurture_in_app = True  # type: ignore[attr-defined]
    return command


def _process_name(argv: list[str]) -> str:
    """The subcommand being run (web, worker, scheduler...), which every log line names."""
    return next((arg for arg in argv if not arg.startswith("-")), "cli")


def main() -> None:
    """Entry point of the ``nurture`` console script."""
    from nurture.cli.processes import up_command
    from nurture.observability import logs

    logs.configure(_process_name(sys.argv[1:]))
    for command in _app_commands():
        cli.add_command(_in_app(command))
    # `up` starts the app's processes itself, so it runs before (and without) an app.
    cli.add_command(up_command)
    try:
        cli.main(prog_name="nurture")
    except ConfigError as exc:
        # Said once, in one line: a missing setting is the operator's to fix, not a crash.
        click.secho(f"nurture: {exc}", err=True, fg="red")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
