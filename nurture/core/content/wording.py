"""nurture's own words in a mail (the layout's footer), in each language it speaks.

The team writes its mails (and their translations); the footer every layout adds is
nurture's, so it is written here, once per language, by people who speak it. A mail's
footer is in the mail's language; a language not listed here gets the team's default.
"""

from __future__ import annotations

from nurture.core import languages

FOOTER: dict[str, dict[str, str]] = {
    "en": {
        "reason": "You are receiving this because you applied to {company}.",
        "unsubscribe": "Unsubscribe",
        "preferences": "Email preferences",
        "colon": ":",
    },
    "de": {
        "reason": "Sie erhalten diese E-Mail, weil Sie sich bei {company} beworben haben.",
        "unsubscribe": "Abmelden",
        "preferences": "E-Mail-Einstellungen",
        "colon": ":",
    },
    "fr": {
        "reason": "Vous recevez cet e-mail parce que vous avez postulé chez {company}.",
        "unsubscribe": "Se désabonner",
        "preferences": "Préférences e-mail",
        # French sets a thin space before a colon.
        "colon": "\u00a0:",
    },
    "es": {
        "reason": "Recibes este correo porque solicitaste un puesto en {company}.",
        "unsubscribe": "Darte de baja",
        "preferences": "Preferencias de correo",
        "colon": ":",
    },
}


# What stands in for a missing first name, role or recruiter. English reads "Hi there" and
# "for the role you applied for"; other languages cannot say it that way, so there the name
# and role are empty and the translations guard them ({% if candidate.first_name %}).
FALLBACKS: dict[str, dict[str, str]] = {
    "en": {
        "candidate.first_name": "there",
        "candidate.role": "the role you applied for",
        "recruiter.name": "{company} Talent Team",
    },
    "de": {
        "candidate.first_name": "",
        "candidate.role": "",
        "recruiter.name": "Ihr Recruiting-Team von {company}",
    },
    "fr": {
        "candidate.first_name": "",
        "candidate.role": "",
        "recruiter.name": "L'équipe recrutement de {company}",
    },
    "es": {
        "candidate.first_name": "",
        "candidate.role": "",
        "recruiter.name": "El equipo de selección de {company}",
    },
}


def fallbacks(language: str, default: str = "en") -> dict[str, str]:
    """The stand-ins for missing values in ``language``; English for a language not listed."""
    code = languages.choose(language, FALLBACKS, default) or "en"
    return FALLBACKS[code if code in FALLBACKS else "en"]


def spoken(language: str, default: str = "en") -> str:
    """The language of nurture's own words for a reader of ``language`` (en when none fits)."""
    return languages.choose(language, FOOTER, default) or "en"


def footer(language: str, company: str, default: str = "en") -> dict[str, str]:
    """The footer's words in ``language`` (or the nearest fallback), the company named."""
    words = FOOTER[spoken(language, default)]
    return {key: value.format(company=company) for key, value in words.items()}
