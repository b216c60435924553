"""The ``nurture`` command: web app, worker, scheduler, the whole system, users, tokens, demo."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup


def init_app(app: Flask) -> None:
    """Register the commands that run inside an app on the app's CLI."""
    from nurture.cli import accounts, data, dkim, imports, processes

    for command in (
        dkim.dkim_command,
        processes.inbound_command,
        accounts.users_cli,
        accounts.tokens_cli,
        processes.scheduler_command,
        processes.worker_command,
        processes.web_command,
        data.demo_command,
        imports.import_command,
    ):
        app.cli.add_command(command)


def _create_app() -> Flask:
    from nurture import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=True)
def cli() -> None:
    """nurture: talent-network email campaigns."""


def main() -> None:
    """Entry point of the ``nurture`` console script."""
    from nurture.cli.processes import up_command

    # `up` starts the app's processes itself, so it runs before (and without) an app.
    cli.add_command(up_command)
    cli(prog_name="nurture")


if __name__ == "__main__":  # pragma: no cover
    main()
