"""The long-running commands: ``nurture web``, ``worker``, ``scheduler``, ``inbound`` and ``up``."""

from __future__ import annotations

import logging
import signal
import time

import click
from flask import current_app
from flask.cli import with_appcontext

from nurture.tasks.inbound import process_inbound

log = logging.getLogger("nurture.scheduler")
# The longest the scheduler waits between passes while Redis or the database is away.
RETRY_CAP = 10.0


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
    failures = 0
    while True:
        wait = interval
        try:
            run_tick(app)  # logs what the pass did
            for name in run_periodic(app, housekeeping):
                app.logger.debug("scheduler: ran %s", name)
            if failures:
                log.warning("scheduler back", extra={"failed_passes": failures})
            failures = 0
        except Exception as exc:  # noqa: BLE001 - a down Redis or DB must not end the loop
            if once:
                raise
            failures += 1
            # Back off while a server is away, but notice its return within RETRY_CAP seconds.
            wait = min(interval * 2 ** min(failures - 1, 8), max(interval, RETRY_CAP))
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            log.error(
                "scheduler pass failed",
                extra={"error": type(exc).__name__, "detail": first, "retry_in": round(wait, 1)},
            )
        if once or stopping:
            return
        deadline = time.monotonic() + wait
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, interval))


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run a worker that sends queued mail; SIGTERM stops it after the mail in hand."""
    from nurture.tasks.worker import run_worker

    run_worker(current_app._get_current_object(), burst=burst)  # type: ignore[attr-defined]


@click.command("web")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int, envvar="NURTURE_PORT", show_default=True)
def web_command(host: str, port: int) -> None:
    """Serve the admin, API and tracking paths (production: gunicorn -c deploy/gunicorn.conf.py)."""
    from werkzeug.serving import run_simple

    from nurture.web.security import QuietRequestHandler

    run_simple(
        host,
        port,
        current_app._get_current_object(),
        threaded=True,  # type: ignore[attr-defined]
        use_reloader=False,
        request_handler=QuietRequestHandler,
    )


@click.command("up")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int, envvar="NURTURE_PORT", show_default=True)
@click.option("--demo/--no-demo", default=True, help="Seed demo data on an empty database.")
def up_command(host: str, port: int, demo: bool) -> None:
    """Start everything: migrations, embedded Redis and SMTP capture, web, worker, scheduler."""
    from nurture.dev.system import System

    System(host=host, port=port, demo=demo).run()


# Seconds between passes of `nurture inbound` without --once.
INBOUND_INTERVAL = 60.0


@click.command("inbound")
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option(
    "--interval",
    type=float,
    default=INBOUND_INTERVAL,
    show_default=True,
    help="Seconds between passes.",
)
@with_appcontext
def inbound_command(once: bool, interval: float) -> None:
    """Read replies, bounces and complaints from the configured mailboxes."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not (app.config.get("INBOUND_IMAP_URL") or app.config.get("BOUNCE_IMAP_URL")):
        raise click.ClickException(
            "set NURTURE_INBOUND_IMAP_URL and/or NURTURE_BOUNCE_IMAP_URL "
            "(imaps://user:pass@host:993/INBOX or maildir:///path)"
        )
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    if not once:
        signal.signal(signal.SIGTERM, stop)
    while True:
        try:
            counts = process_inbound(app)
            if counts or once:
                summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
                click.echo(f"inbound: {summary or 'nothing new'}")
        except Exception as exc:  # noqa: BLE001 - a mail server outage must not end the loop
            if once:
                raise click.ClickException(f"inbound pass failed: {exc}") from exc
            click.echo(f"inbound: pass failed: {exc}", err=True)
        if once or stopping:
            return
        deadline = time.monotonic() + interval
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.2)
