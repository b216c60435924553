"""``nurture dkim``: make a DKIM key and print the DNS record receivers check signatures with."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from nurture.core.delivery.dkim import DkimError, DkimSigner, generate_key


@click.group("dkim")
def dkim_command() -> None:
    """DKIM signing: generate a key, print its DNS record."""


@dkim_command.command("generate")
@click.option("--selector", required=True, help="The selector, e.g. nurture1 (rotate by date).")
@click.option("--domain", required=True, help="The signing domain: your From address's domain.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the private key [default: <instance>/dkim.pem].",
)
@click.option("--bits", type=click.IntRange(1024, 4096), default=2048, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing key file.")
@with_appcontext
def generate_command(selector: str, domain: str, out: Path | None, bits: int, force: bool) -> None:
    """Write a new private key (mode 0600) and print its DNS TXT record and the settings."""
    path = (out or Path(current_app.instance_path) / "dkim.pem").resolve()
    if path.exists() and not force:
        raise click.ClickException(
            f"{path} exists and may be the key a published record belongs to; "
            "to rotate, give a new --selector and another --out (or --force to replace it)"
        )
    try:
        private_pem, _ = generate_key(bits)
        signer = DkimSigner(selector, domain, private_pem)  # the checks the sender makes
    except DkimError as exc:
        raise click.ClickException(str(exc)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    if force:
        path.unlink(missing_ok=True)
    # Created 0600 from the start: the key is never readable by others, not even for a moment.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(private_pem)
    click.echo(f"Wrote the private key to {path} (mode 0600). Keep it secret; back it up.\n")
    click.echo("1. Publish this DNS TXT record:\n")
    click.echo(f"   {signer.dns_record()}\n")
    click.echo("2. Once it resolves, set these and restart the workers:\n")
    click.echo(f"   NURTURE_DKIM_SELECTOR={signer.selector}")
    click.echo(f"   NURTURE_DKIM_DOMAIN={signer.domain}")
    click.echo(f"   NURTURE_DKIM_PRIVATE_KEY_FILE={path}\n")
    click.echo(
        "For DMARC, send From an address at this domain (or a subdomain, with relaxed "
        "alignment), and list your SMTP relay in the domain's SPF record."
    )


@dkim_command.command("record")
@with_appcontext
def record_command() -> None:
    """Print the DNS TXT record of the configured key."""
    try:
        signer = DkimSigner.from_config(current_app.config)
    except DkimError as exc:
        raise click.ClickException(str(exc)) from None
    if signer is None:
        raise click.ClickException(
            "DKIM is not configured: set NURTURE_DKIM_SELECTOR, NURTURE_DKIM_DOMAIN and "
            "NURTURE_DKIM_PRIVATE_KEY_FILE (or NURTURE_DKIM_PRIVATE_KEY); "
            "`nurture dkim generate` makes a key"
        )
    click.echo(signer.dns_record())
