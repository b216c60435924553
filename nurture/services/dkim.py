"""DKIM signatures (RFC 6376) on outgoing mail, and the keys and DNS records they need."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dkim
from dkim.canonicalization import CanonicalizationPolicy
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

log = logging.getLogger(__name__)

# Receivers ignore signatures made with shorter keys (RFC 8301); 2048 is what they recommend.
MIN_BITS = 1024
MAX_BITS = 4096

# Signed whenever present; SpamAssassin, Gmail and Yahoo look at the List-* headers in particular.
SIGNED = frozenset(
    {
        b"from", b"sender", b"reply-to", b"to", b"cc", b"subject", b"date", b"message-id",
        b"in-reply-to", b"references", b"list-id", b"list-unsubscribe", b"list-unsubscribe-post",
        b"precedence", b"feedback-id", b"mime-version", b"content-type",
        b"content-transfer-encoding",
    }
)
# Named once more than they occur ("oversigned"), so a relay or a replayer cannot add a second
# From, Subject or List-Unsubscribe, nor one the message did not have, without breaking it.
OVERSIGNED = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-unsubscribe",
    b"list-unsubscribe-post", b"list-id", b"mime-version", b"content-type",
)

_LABELS = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*")
_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
# DER of the AlgorithmIdentifier rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
_RSA_ALGORITHM = bytes.fromhex("300d06092a864886f70d0101010500")


class DkimError(ValueError):
    """A DKIM setting or key that cannot be used."""


class _Dkim(dkim.DKIM):
    """dkimpy's signer, handed a key parsed beforehand instead of PEM text for every message."""

    # DKIM.sign() parses the PEM on every call; this is its RSA path without that step, and the
    # header building and hashing stay dkimpy's own (gen_header). test_dkim.py verifies the result.
    def sign_parsed(
        self, key: dict[str, int], selector: bytes, domain: bytes, headers: list[bytes]
    ) -> bytes:
        """The ``DKIM-Signature`` header line (rsa-sha256, relaxed/relaxed) for the message."""
        self.hasher = hashlib.sha256
        body_hash = base64.b64encode(hashlib.sha256(_RELAXED.canonicalize_body(self.body)).digest())
        fields = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", _RELAXED.to_c_value()),
            (b"d", domain),
            (b"q", b"dns/txt"),
            (b"s", selector),
            # Real time, not the injected clock: verifiers refuse a t= in the future.
            (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(headers)),
            (b"bh", body_hash),
            # A long placeholder puts b= on lines of its own: filling it in never refolds the rest.
            (b"b", b"0" * 60),
        ]
        return b"DKIM-Signature: " + self.gen_header(
            fields, headers, _RELAXED, b"DKIM-Signature", key
        )


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
        selector = str(config.get("DKIM_SELECTOR") or "").strip()
        domain = str(config.get("DKIM_DOMAIN") or "").strip()
        pem = str(config.get("DKIM_PRIVATE_KEY") or "").strip()
        path = str(config.get("DKIM_PRIVATE_KEY_FILE") or "").strip()
        if not (selector or domain or pem or path):
            return None
        if not (selector and domain and (pem or path)):
            missing = [
                f"NURTURE_{name}"
                for name, value in (
                    ("DKIM_SELECTOR", selector),
                    ("DKIM_DOMAIN", domain),
                    ("DKIM_PRIVATE_KEY or NURTURE_DKIM_PRIVATE_KEY_FILE", pem or path),
                )
                if not value
            ]
            log.warning("DKIM is only partly configured (%s not set); mail goes out unsigned",
                        ", ".join(missing))
            return None
        if pem and path:
            raise DkimError(
                "set NURTURE_DKIM_PRIVATE_KEY or NURTURE_DKIM_PRIVATE_KEY_FILE, not both"
            )
        if path:
            try:
                pem = Path(path).read_text("ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise DkimError(
                    f"cannot read NURTURE_DKIM_PRIVATE_KEY_FILE {path}: {exc}"
                ) from None
        return cls(selector, domain, pem)

    @property
    def bits(self) -> int:
        """The size of the RSA key."""
        return self._key["modulus"].bit_length()

    @property
    def public_b64(self) -> str:
        """The public key as it goes into the ``p=`` tag of the DNS record."""
        return _public_b64(self._key)

    def dns_record(self) -> str:
        """The TXT record receivers look this signer's key up in."""
        return dns_record(self.selector, self.domain, self.public_b64)

    def sign(self, message: bytes) -> bytes:
        """``message`` with a ``DKIM-Signature`` header in front (CRLF line ends throughout)."""
        signer = _Dkim(message, linesep=b"\r\n")
        present = [name for name, _ in signer.headers if name.lower() in SIGNED]
        headers = [name.lower() for name in present] + list(OVERSIGNED)
        signature = signer.sign_parsed(self._key, self._selector, self._domain, headers)
        signed = signature + message
        # dkimpy folds with the line separator it is given, and a caller may hand over LF mail;
        # SMTP wants CRLF only, and canonicalisation makes the signature indifferent to it.
        if signed.count(b"\n") != signed.count(b"\r\n"):
            signed = re.sub(rb"\r?\n", b"\r\n", signed)
        return signed


def parse_key(private_pem: str | bytes) -> dict[str, int]:
    """The RSA private key in PEM text (PKCS#1 or PKCS#8), checked to be usable for DKIM."""
    text = private_pem.decode("ascii", "replace") if isinstance(private_pem, bytes) else private_pem
    text = text.strip().replace("\r\n", "\n")
    if "\n" not in text and "\\n" in text:
        # An environment file often holds the PEM on one line with literal "\n"s.
        text = text.replace("\\n", "\n")
    if "ENCRYPTED" in text:
        raise DkimError("the DKIM private key is encrypted; give it without a passphrase")
    try:
        key = parse_pem_private_key(text.encode("ascii", "replace"))
    except (UnparsableKeyError, ValueError) as exc:
        raise DkimError(f"the DKIM private key is not an RSA key in PEM form: {exc}") from None
    bits = key["modulus"].bit_length()
    if bits < MIN_BITS:
        raise DkimError(f"the DKIM key has {bits} bits; receivers ignore keys under {MIN_BITS}")
    return key


def generate_key(bits: int = 2048) -> tuple[str, str]:
    """A new RSA key: (private key as PKCS#8 PEM, public key base64 for the DNS record)."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise DkimError(f"a DKIM key has {MIN_BITS} to {MAX_BITS} bits; 2048 is recommended")
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DkimError("generating a key needs the openssl command (apt-get install openssl)")
    # OpenSSL, as dkimpy's own dknewkey does: key generation is not something to write anew.
    done = subprocess.run(
        [openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise DkimError(f"openssl could not generate a key: {done.stderr.strip()}")
    return done.stdout, _public_b64(parse_key(done.stdout))


def txt_value(public_b64: str) -> str:
    """The text of the DKIM key record."""
    return f"v=DKIM1; k=rsa; p={public_b64}"


def dns_record(selector: str, domain: str, public_b64: str) -> str:
    """``<selector>._domainkey.<domain> TXT "..." "..."``, in strings of at most 255 characters."""
    value = txt_value(public_b64)
    # One TXT character-string holds 255 octets; receivers join the strings back together.
    strings = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"{selector}._domainkey.{domain} TXT {strings}"


def _dns_name(value: str, what: str) -> str:
    value = (value or "").strip().rstrip(".")
    if not _LABELS.fullmatch(value) or len(value) > 253:
        raise DkimError(f"the DKIM {what} {value!r} is not a DNS name (letters, digits, - and .)")
    return value


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _der_integer(value: int) -> bytes:
    # One more octet than the bits need, so a leading 1 bit never reads as a sign.
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _public_b64(key: Mapping[str, int]) -> str:
    """The SubjectPublicKeyInfo of an RSA key, base64, as DKIM's ``p=`` tag wants it."""
    rsa_public = _der(0x30, _der_integer(key["modulus"]) + _der_integer(key["publicExponent"]))
    spki = _der(0x30, _RSA_ALGORITHM + _der(0x03, b"\x00" + rsa_public))
    return base64.b64encode(spki).decode("ascii")
