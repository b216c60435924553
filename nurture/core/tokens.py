"""Signed tokens: the short, tamper-proof parts of tracking, unsubscribe and preference URLs.

A small shared piece below the domains: delivery signs them into mail, feedback and compliance
check them when a candidate follows one.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import zlib
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData, URLSafeSerializer
from itsdangerous.signer import HMACAlgorithm


class BadToken(Exception):
    """A tracking or unsubscribe token that was not signed by us."""


@dataclass(frozen=True)
class Tokens:
    """Signs and checks the short tokens in tracking and unsubscribe URLs."""

    secret: str
    base_url: str
    # False (the OPEN_TRACKING setting) puts no open pixel in anyone's mail.
    open_tracking: bool = True

    def _serializer(self, purpose: str) -> URLSafeSerializer:
        # Building a serializer derives its key; one per purpose is enough for a process.
        return _serializer(self.secret, purpose)

    def sign(self, purpose: str, payload: Any) -> str:
        """A URL-safe signed token for ``payload``: itsdangerous's ``URLSafeSerializer.dumps``
        to the byte, with its key derived once per purpose rather than at every token (a mail
        signs a dozen: its links, its pixel, its unsubscribe URLs)."""
        mac = _mac(self.secret, purpose).copy()
        raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        compressed = zlib.compress(raw)
        value = b"." + _b64(compressed) if len(compressed) < len(raw) - 1 else _b64(raw)
        mac.update(value)
        return (value + b"." + _b64(mac.digest())).decode()

    def load(self, purpose: str, token: str) -> Any:
        """The payload of a token we signed, or BadToken."""
        try:
            return self._serializer(purpose).loads(token)
        except BadData:  # a bad signature, or (never without our key) a payload we cannot read
            raise BadToken(purpose) from None

    def open_url(self, message_id: int) -> str:
        """The URL of the open pixel of a message."""
        return f"{self.base_url}/o/{self.sign('open', message_id)}.gif"

    def click_url(self, message_id: int, url: str) -> str:
        """A redirect through us to ``url``, valid only for this message and this URL."""
        return f"{self.base_url}/c/{self.sign('click', [message_id, url])}"

    def unsubscribe_url(self, candidate_id: int, message_id: int | None) -> str:
        """The one-click unsubscribe URL (RFC 8058) for a candidate."""
        return f"{self.base_url}/u/{self.sign('unsubscribe', [candidate_id, message_id])}"

    def mail_urls(self, candidate_id: int, message_id: int | None) -> tuple[str, str]:
        """The unsubscribe and preference URLs of one mail, from one signature (the same token)."""
        token = self.sign("unsubscribe", [candidate_id, message_id])
        return f"{self.base_url}/u/{token}", f"{self.base_url}/p/{token}"

    def preferences_url(self, candidate_id: int, message_id: int | None) -> str:
        """The preference page of a candidate."""
        return f"{self.base_url}/p/{self.sign('unsubscribe', [candidate_id, message_id])}"

    def rating_url(self, message_id: int, value: int) -> str:
        """A one-click answer (1-5) to "how was your interview experience?" in a message."""
        return f"{self.base_url}/r/{self.sign('rating', [message_id, value])}"

    def rating_urls(self, message_id: int) -> list[str]:
        """The five answers of a message, from 1 (poor) to 5 (excellent)."""
        return [self.rating_url(message_id, value) for value in range(1, 6)]

    def reconsent_url(self, candidate_id: int, message_id: int | None) -> str:
        """The "yes, keep me in your talent network" page of a re-consent mail."""
        # The same authority as the preference page (the candidate's own mail link).
        return f"{self.base_url}/k/{self.sign('unsubscribe', [candidate_id, message_id])}"

    def referral_url(
        self, candidate_id: int, opening_id: int | None, message_id: int | None
    ) -> str:
        """The "know someone for this opening?" page of one candidate (and the mail it was in)."""
        payload = [candidate_id, opening_id or 0, message_id or 0]
        return f"{self.base_url}/f/{self.sign('referral', payload)}"

    def referral_consent_url(self, candidate_id: int) -> str:
        """The page where someone who was recommended to us says yes (or no) to hearing from us."""
        return f"{self.base_url}/f/consent/{self.sign('referral-consent', candidate_id)}"

    @classmethod
    def from_config(cls, config: Any) -> Tokens:
        """Tokens for an app's ``SECRET_KEY``, ``BASE_URL`` and ``OPEN_TRACKING`` settings."""
        return cls(
            config["SECRET_KEY"],
            config["BASE_URL"].rstrip("/"),
            open_tracking=bool(config.get("OPEN_TRACKING", True)),
        )


@functools.lru_cache(maxsize=32)
def _serializer(secret: str, purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=f"nurture.{purpose}")


@functools.lru_cache(maxsize=32)
def _mac(secret: str, purpose: str) -> hmac.HMAC:
    """The HMAC, keyed as the purpose's itsdangerous signer keys it, that each token copies."""
    signer = _serializer(secret, purpose).make_signer()
    assert isinstance(signer.algorithm, HMACAlgorithm), "tokens are HMAC-signed"
    return hmac.new(signer.derive_key(), digestmod=signer.algorithm.digest_method)


def _b64(data: bytes) -> bytes:
    """itsdangerous's URL-safe base64, without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")
