"""The variables a template sees, with the documented fallbacks for what is missing."""

from __future__ import annotations

from typing import Any

from nurture.core.content import wording
from nurture.core.content.mime import MailSettings
from nurture.models import Campaign, Candidate

# Documented in templates/emails/README.md; change both together. Other languages' stand-ins
# are in wording.FALLBACKS.
FALLBACKS = wording.FALLBACKS["en"]


def recruiter_of(
    candidate: Candidate, campaign: Campaign, settings: MailSettings, language: str = ""
) -> tuple[str, str]:
    """The (name, address) a candidate's mail comes from: their recruiter, else the team."""
    if campaign.sender_is_recruiter and candidate.recruiter_email:
        stand_in = wording.fallbacks(language, settings.default_language)
        name = candidate.recruiter_name or stand_in["recruiter.name"].format(
            company=settings.company_name
        )
        return name, candidate.recruiter_email
    name = campaign.sender_name or settings.sender_name
    return name, campaign.sender_email or settings.sender_email


def build_context(
    candidate: Candidate,
    campaign: Campaign,
    settings: MailSettings,
    *,
    unsubscribe_url: str,
    preferences_url: str,
    job: dict[str, Any] | None = None,
    rating_urls: list[str] | None = None,
    reconsent_url: str = "",
    referral: dict[str, str] | None = None,
    language: str = "",
) -> dict[str, Any]:
    """Everything a template may use, never None.

    ``rating_urls`` are the five signed one-click answers (1 to 5) of this message; without
    a message (previews) they are inert ``#`` links. ``reconsent_url`` falls back to the
    preference page showing the same "keep me in your talent network" button.
    ``language`` is the mail's (the translation chosen for the candidate): the footer's
    words follow it.
    """
    language = language or settings.default_language
    recruiter_name, recruiter_email = recruiter_of(candidate, campaign, settings, language)
    stand_in = wording.fallbacks(language, settings.default_language)
    return {
        "candidate": {
            "first_name": candidate.first_name or stand_in["candidate.first_name"],
            "last_name": candidate.last_name or "",
            "full_name": candidate.full_name or stand_in["candidate.first_name"],
            "email": candidate.email,
            "role": candidate.role or stand_in["candidate.role"],
            "stage": candidate.stage or "",
            "rejection_reason": candidate.rejection_reason or "",
            "strengths": candidate.strengths or "",
            "skills": list(candidate.skills or []),
            "location": candidate.location or "",
        },
        "recruiter": {
            "name": recruiter_name,
            "first_name": recruiter_name.split()[0] if recruiter_name else "",
            "email": recruiter_email,
        },
        "company": {
            "name": settings.company_name,
            "postal_address": settings.postal_address,
            "careers_url": settings.careers_url,
            "talent_network_url": settings.talent_network_url,
        },
        "campaign": {"name": campaign.name},
        "language": language,
        "footer": wording.footer(language, settings.company_name, settings.default_language),
        "job": job or {"title": "", "location": "", "url": settings.careers_url, "summary": ""},
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
        "rating_urls": list(rating_urls) if rating_urls else ["#"] * 5,
        "reconsent_url": reconsent_url or f"{preferences_url}?stay=1",
        # The signed "know someone for …?" link, and who and what the mails about a referral
        # name; inert outside a real send (the sender fills it when a template reads it).
        "referral": referral
        or {
            "url": "#",
            "opening": (job or {}).get("title") or "one of our open roles",
            "referrer_name": "",
            "referred_name": "",
            "consent_url": "#",
        },
    }
