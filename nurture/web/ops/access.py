"""Who may read /metrics: Prometheus with the token, or a client on a private network."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from flask import Flask, Request

from nurture.config import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PRIVATE = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)
# A proxy in front says who the client was; then the peer address tells nothing about them.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def allowed_networks(setting: Iterable[str] | str | None) -> list[Network]:
    """``NURTURE_METRICS_ALLOW`` parsed: CIDRs or "private", as a list or comma-separated."""
    if setting is None:
        return []
    entries = setting.split(",") if isinstance(setting, str) else list(setting)
    networks: list[Network] = []
    for raw in entries:
        entry = str(raw).strip()
        if not entry:
            continue
        for cidr in PRIVATE if entry.lower() == "private" else (entry,):
            try:
                networks.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                raise ConfigError(
                    f"NURTURE_METRICS_ALLOW: {entry!r} is not a network; use CIDRs such as "
                    '10.0.0.0/8, or "private" for loopback and the private ranges'
                ) from None
    return networks


def install(app: Flask) -> None:
    """Check the settings once, when the app is made: a typo fails at start, not at a scrape."""
    app.extensions["nurture.metrics_allow"] = allowed_networks(app.config.get("METRICS_ALLOW"))


def refusal(app: Flask, request: Request) -> tuple[int, str] | None:
    """Why this request may not read the metrics (status and message), or None if it may."""
    token = app.config.get("METRICS_TOKEN")
    if token:
        sent = request.headers.get("Authorization", "")
        scheme, _, value = sent.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), str(token)):
            return None
        return 401, "send Authorization: Bearer <NURTURE_METRICS_TOKEN>"
    networks: list[Network] = app.extensions.get("nurture.metrics_allow", [])
    if not networks:
        return 403, "/metrics is off: set NURTURE_METRICS_TOKEN or NURTURE_METRICS_ALLOW"
    if any(header in request.headers for header in FORWARDING_HEADERS):
        return 403, "/metrics is not served through a proxy without NURTURE_METRICS_TOKEN"
    try:
        client = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return 403, "the client address is unknown"
    if any(client in network for network in networks):
        return None
    return 403, "this client address is not in NURTURE_METRICS_ALLOW"
