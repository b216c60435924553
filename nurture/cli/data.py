"""``nurture demo``: demo data for a first look."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from nurture import runtime
from nurture.extensions import db


@click.command("demo")
@with_appcontext
def demo_command() -> None:
    """Seed demo data (candidates, a 3-step drip, an admin) unless it is there already."""
    from nurture.dev.demo import seed_demo

    result = seed_demo(
        db.session, current_app.config, runtime.now(), Path(current_app.instance_path)
    )
    db.session.commit()
    click.echo(result.summary())
