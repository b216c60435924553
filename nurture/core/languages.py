"""Language codes (BCP 47, the short form: ``de``, ``pt-BR``, ``zh-Hant``) and the choice of
which translation a candidate gets.

A candidate's language comes from the ATS, a CSV column, the API or their own preference page;
every translated thing (a template, a step's subject, the footer, the public pages) is looked up
with ``choose``: the candidate's language, else the same language without its region, else the
team's default (``NURTURE_DEFAULT_LANGUAGE``), else the original text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# language[-script][-region]: "de", "pt-BR", "zh-Hant-TW", "es-419". Longer private-use or
# variant tags are not accepted: nobody writes a template for them.
_CODE = re.compile(r"([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|[0-9]{3}))?")
MAX_LENGTH = 16

# What the public pages and the footer are written in (nurture's own words), by their own names.
NAMES = {
    "en": "English",
    "de": "Deutsch",
    "fr": "Français",
    "es": "Español",
}
EXAMPLE = "use a language code such as de, fr or pt-BR"


class BadLanguage(ValueError):
    """Not a language code; the message says what one looks like."""


def normalise(value: str) -> str:
    """The code in its usual spelling (``PT_br`` → ``pt-BR``); "" stays ""; BadLanguage else."""
    value = (value or "").strip()
    if not value:
        return ""
    found = _CODE.fullmatch(value) if len(value) <= MAX_LENGTH else None
    if found is None:
        raise BadLanguage(f"{value[:40]!r} is not a language code; {EXAMPLE}")
    language, script, region = found.groups()
    parts = [language.lower()]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "-".join(parts)


def primary(code: str) -> str:
    """The language without script or region: ``pt-BR`` → ``pt``."""
    return code.split("-", 1)[0]


def choose(wanted: str, available: Iterable[str], default: str) -> str | None:
    """Which of ``available`` a candidate who reads ``wanted`` gets, or None for the original.

    ``pt-BR`` takes ``pt-BR``, then ``pt``, then any other ``pt-…``; then the team's default
    the same way; a language nobody translated into falls back, never fails.
    """
    have = {code.lower(): code for code in available}
    for code in (wanted, default):
        if not code:
            continue
        exact = have.get(code.lower())
        if exact is not None:
            return exact
        base = primary(code).lower()
        if base in have:
            return have[base]
        regional = sorted(c for key, c in have.items() if primary(key) == base)
        if regional:
            return regional[0]
    return None
