"""DKIM signatures (RFC 6376) on outgoing mail, and the keys and DNS records they need."""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

log = logging.getLogger(__name__)

# Receivers ignore signatures made with shorter keys (RFC 8301); 2048 is what they recommend.
MIN_BITS = 1024
MAX_BITS = 4096

# Signed whenever present; SpamAssassin, Gmail and Yahoo look at the List-* headers in particular.
SIGNED = frozenset(
    {
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"subject",
        b"date",
        b"message-id",
        b"in-reply-to",
        b"references",
        b"list-id",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
        b"precedence",
        b"feedback-id",
        b"mime-version",
        b"content-type",
        b"content-transfer-encoding",
    }
)
# Named once more than they occur ("oversigned"), so a relay or a replayer cannot add a second
# From, Subject or List-Unsubscribe, nor one the message did not have, without breaking it.
OVERSIGNED = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-id",
    b"mime-version",
    b"content-type",
)

_LABELS = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*")
_HEADER = b"DKIM-Signature"
_CRLF = b"\r\n"
# rsa-sha256: PKCS#1 v1.5 over the SHA-256 of the canonicalised headers, hashed by dkimpy.
_PADDING = padding.PKCS1v15()
_PREHASHED = Prehashed(hashes.SHA256())


@functools.cache
def _dkimpy() -> ModuleType:
    """dkimpy, imported on first use: it pulls in dnspython (some 14 MB), which a worker that
    does not sign never needs."""
    import dkim
    import dkim.canonicalization

    module: ModuleType = dkim
    return module


@functools.cache
def _relaxed() -> Any:
    return _dkimpy().canonicalization.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")


class DkimError(ValueError):
    """A DKIM setting or key that cannot be used."""


class DkimSigner:
    """Signs each outgoing message with one selector, domain and RSA key (parsed once)."""

    def __init__(self, selector: str, domain: str, private_pem: str | bytes) -> None:
        self.selector = _dns_name(selector, "selector")
        self.domain = _dns_name(domain, "domain").lower()
        self._key = parse_key(private_pem)
        self._selector = self.selector.encode("ascii")
        self._domain = self.domain.encode("ascii")

    def __repr__(self) -> str:
        # Never the key: a Sender (and this) may end up in a log line or a traceback.
        return f"DkimSigner(selector={self.selector!r}, domain={self.domain!r})"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DkimSigner | None:
        """The signer the ``NURTURE_DKIM_*`` settings describe, or None when DKIM is not set up."""
        selector, domain, pem, path = (
            str(config.get(name) or "").strip()
            for name in (
                "DKIM_SELECTOR",
                "DKIM_DOMAIN",
                "DKIM_PRIVATE_KEY",
                "DKIM_PRIVATE_KEY_FILE",
            )
        )
        if not (selector or domain or pem or path):
            return None
        if not (selector and domain and (pem or path)):
            _warn_partly_configured(selector, domain, pem or path)
            return None
        return cls(selector, domain, _key_text(pem, path))

    @property
    def bits(self) -> int:
        """The size of the RSA key."""
        return self._key.key_size

    @property
    def public_b64(self) -> str:
        """The public key as it goes into the ``p=`` tag of the DNS record."""
        return _public_b64(self._key)

    def dns_record(self) -> str:
        """The TXT record receivers look this signer's key up in."""
        return dns_record(self.selector, self.domain, self.public_b64)

    def sign(self, message: bytes) -> bytes:
        """``message`` with a ``DKIM-Signature`` header in front (CRLF line ends throughout)."""
        # A caller may hand over LF mail; SMTP wants CRLF only, and dkimpy reads it as CRLF.
        if message.count(b"\n") != message.count(_CRLF):
            message = re.sub(rb"\r?\n", _CRLF, message)
        headers, body = _split(message)
        present = [name.lower() for name, _ in headers if name.lower() in SIGNED]
        return self._signature(headers, body, present + list(OVERSIGNED)) + message

    def _signature(self, headers: list[list[bytes]], body: bytes, include: list[bytes]) -> bytes:
        """The ``DKIM-Signature`` header line (rsa-sha256, relaxed/relaxed) for the message."""
        # dkimpy's DKIM.gen_header, with the RSA done by OpenSSL (through cryptography) instead
        # of dkimpy's pure-Python pow(); test_dkim.py verifies the result with dkim.verify.
        body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest())
        fields = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", _relaxed().to_c_value()),
            (b"d", self._domain),
            (b"q", b"dns/txt"),
            (b"s", self._selector),
            # Real time, not the injected clock: verifiers refuse a t= in the future.
            (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(include)),
            (b"bh", body_hash),
            # A long placeholder puts b= on lines of its own: filling it in never refolds the rest.
            (b"b", b"0" * 60),
        ]
        unsigned = _dkimpy().fold(_join(fields), namelen=len(_HEADER), linesep=_CRLF)
        digest = hashlib.sha256()
        # Hashes the chosen headers and this one with b= emptied, all canonicalised.
        _dkimpy().hash_headers(
            digest,
            _relaxed(),
            _relaxed().canonicalize_headers(headers),
            include,
            (_HEADER, b" " + unsigned),
            dict(fields),
        )
        signature = self._key.sign(digest.digest(), _PADDING, _PREHASHED)
        fields[-1] = (b"b", base64.b64encode(signature))
        folded: bytes = _dkimpy().fold(_join(fields) + _CRLF, namelen=len(_HEADER), linesep=_CRLF)
        return _HEADER + b": " + folded


def _warn_partly_configured(selector: str, domain: str, key: str) -> None:
    """Some DKIM settings but not all: say which are missing (mail goes out unsigned)."""
    missing = [
        f"NURTURE_{name}"
        for name, value in (
            ("DKIM_SELECTOR", selector),
            ("DKIM_DOMAIN", domain),
            ("DKIM_PRIVATE_KEY or NURTURE_DKIM_PRIVATE_KEY_FILE", key),
        )
        if not value
    ]
    log.warning(
        "DKIM is only partly configured (%s not set); mail goes out unsigned", ", ".join(missing)
    )


def _key_text(pem: str, path: str) -> str:
    """The PEM text from NURTURE_DKIM_PRIVATE_KEY, or read from NURTURE_DKIM_PRIVATE_KEY_FILE."""
    if pem and path:
        raise DkimError("set NURTURE_DKIM_PRIVATE_KEY or NURTURE_DKIM_PRIVATE_KEY_FILE, not both")
    if not path:
        return pem
    try:
        return Path(path).read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise DkimError(f"cannot read NURTURE_DKIM_PRIVATE_KEY_FILE {path}: {exc}") from None


def parse_key(private_pem: str | bytes) -> rsa.RSAPrivateKey:
    """The RSA private key in PEM text (PKCS#1 or PKCS#8), checked to be usable for DKIM."""
    text = private_pem.decode("ascii", "replace") if isinstance(private_pem, bytes) else private_pem
    text = text.strip().replace("\r\n", "\n")
    if "\n" not in text and "\\n" in text:
        # An environment file often holds the PEM on one line with literal "\n"s.
        text = text.replace("\\n", "\n")
    encrypted = DkimError("the DKIM private key is encrypted; give it without a passphrase")
    if "ENCRYPTED" in text:
        raise encrypted
    try:
        key = serialization.load_pem_private_key(text.encode("ascii", "replace"), password=None)
    except TypeError:  # cryptography's word for "needs a password"
        raise encrypted from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DkimError(f"the DKIM private key is not an RSA key in PEM form: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimError(
            "the DKIM private key is not an RSA key in PEM form: it is "
            f"{type(key).__name__.lstrip('_')}; nurture signs with rsa-sha256"
        )
    if key.key_size < MIN_BITS:
        raise DkimError(
            f"the DKIM key has {key.key_size} bits; receivers ignore keys under {MIN_BITS}"
        )
    return key


def generate_key(bits: int = 2048) -> tuple[str, str]:
    """A new RSA key: (private key as PKCS#8 PEM, public key base64 for the DNS record)."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise DkimError(f"a DKIM key has {MIN_BITS} to {MAX_BITS} bits; 2048 is recommended")
    # OpenSSL's key generation (through cryptography), with the exponent RFC 8017 and all use.
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode("ascii"), _public_b64(key)


def txt_value(public_b64: str) -> str:
    """The text of the DKIM key record."""
    return f"v=DKIM1; k=rsa; p={public_b64}"


def dns_record(selector: str, domain: str, public_b64: str) -> str:
    """``<selector>._domainkey.<domain> TXT "..." "..."``, in strings of at most 255 characters."""
    value = txt_value(public_b64)
    # One TXT character-string holds 255 octets; receivers join the strings back together.
    strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    return f"{selector}._domainkey.{domain} TXT {strings}"


def _dns_name(value: str, what: str) -> str:
    value = (value or "").strip().rstrip(".")
    if not _LABELS.fullmatch(value) or len(value) > 253:
        raise DkimError(f"the DKIM {what} {value!r} is not a DNS name (letters, digits, - and .)")
    return value


def _split(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's ``rfc822_parse`` of CRLF mail, handed only the header lines.

    Given the whole mail it splits and rejoins every line of the body too: 0.12 ms an 11 kB mail.
    """
    if message.startswith(_CRLF):
        return [], message[2:]
    head, _, body = message.partition(_CRLF + _CRLF)
    headers, _ = _dkimpy().rfc822_parse(head + _CRLF)
    return headers, body


def _relaxed_body(body: bytes) -> bytes:
    """dkimpy's relaxed body canonicalisation (RFC 6376, 3.4.4) of a CRLF body, quicker.

    Its two regular expressions (whitespace runs to one space, none before a line end) take
    0.5 ms on an 11 kB mail, twice the RSA signature; ``bytes.replace`` does it in 0.04 ms.
    """
    body = body.replace(b"\t", b" ")
    while b"  " in body:
        body = body.replace(b"  ", b" ")
    canonical = _dkimpy().canonicalization
    relaxed: bytes = canonical.correct_empty_body(
        canonical.strip_trailing_lines(body.replace(b" \r\n", _CRLF))
    )
    return relaxed


def _join(fields: list[tuple[bytes, bytes]]) -> bytes:
    return b"; ".join(name + b"=" + value for name, value in fields)


def _public_b64(key: rsa.RSAPrivateKey) -> str:
    """The SubjectPublicKeyInfo of an RSA key, base64, as DKIM's ``p=`` tag wants it."""
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(spki).decode("ascii")
