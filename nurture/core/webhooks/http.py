"""The HTTP side of a webhook delivery: one POST with requests, never following redirects."""

from __future__ import annotations

import requests

from nurture.core.webhooks.delivery import Answer


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body``; connection problems and timeouts are an Answer without a status."""
    try:
        # A redirect would resend a signed body somewhere nobody configured: it is an error.
        response = requests.post(
            url, data=body, headers=headers, timeout=(min(timeout, 5.0), timeout),
            allow_redirects=False,
        )  # fmt: skip
    except requests.RequestException as exc:
        return Answer(None, error=f"{type(exc).__name__}: {exc}"[:500])
    return Answer(response.status_code, response.text[:2000])
