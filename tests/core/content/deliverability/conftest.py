"""Every starter rendered for a realistic candidate and built the way ``send_one`` builds it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from nurture.config import Config
from nurture.core.content.mime import MailSettings, build_mime, new_message_id
from nurture.core.content.personalisation import build_context, recruiter_of
from nurture.core.content.rendering import TemplateLibrary
from nurture.core.delivery.dkim import DkimSigner, generate_key
from nurture.core.feedback.tracking import instrument
from nurture.core.tokens import Tokens
from nurture.models import Campaign, Candidate
from tests.conftest import require

STARTERS = TemplateLibrary(Config.TEMPLATES_DIR).names()
BASE_URL = "https://nurture.example.com"
SETTINGS = MailSettings(
    company_name="Acme",
    postal_address="Acme Inc., 500 Market Street, Suite 400, San Francisco, CA 94105, USA",
    careers_url="https://careers.example.com",
    talent_network_url="https://careers.example.com/talent-network",
    sender_name="Acme Talent Team",
    sender_email="talent@example.com",
    list_id_domain="nurture.example.com",
    base_url=BASE_URL,
)
TOKENS = Tokens("deliverability-test-secret", BASE_URL)
# What a job-alert campaign hands the renderer for the opening it matched.
JOB = {
    "title": "Staff Backend Engineer, Payments",
    "location": "London, or remote within the UK",
    "url": "https://careers.example.com/jobs/4821-staff-backend-engineer-payments",
    "summary": (
        "Lead the design of our payments platform: a small team, a well-tested Python and "
        "PostgreSQL codebase, and real say in the architecture."
    ),
}


def candidate() -> Candidate:
    """A silver medalist as the ATS sends them: every optional field filled in."""
    return Candidate(
        id=4821,
        email="maya.okafor@example.org",
        first_name="Maya",
        last_name="Okafor",
        timezone="Europe/London",
        location="London",
        role="Senior Backend Engineer",
        stage="final interview",
        rejection_reason="another candidate had more payments experience",
        strengths=(
            "A calm, well-structured system-design walkthrough.\n"
            "Thoughtful questions about how the team shares on-call."
        ),
        skills=["Python", "PostgreSQL", "distributed systems", "Kafka"],
        recruiter_name="Jordan Lee",
        recruiter_email="jordan.lee@example.com",
    )


def sparse_candidate() -> Candidate:
    """A candidate the ATS knew little about: every template falls back to its defaults."""
    return Candidate(id=4822, email="s.k@example.net")


def campaign() -> Campaign:
    """A drip sent in the recruiter's name."""
    return Campaign(id=7, name="Silver medalists 2026", sender_is_recruiter=True)


@dataclass(frozen=True)
class SentMail:
    """One starter as the candidate receives it."""

    name: str
    subject: str
    html: str  # with tracked links and the open pixel, as sent
    text: str
    unsubscribe_url: str
    preferences_url: str
    wire: bytes  # the signed MIME message handed to the SMTP relay


def render_as_sent(
    library: TemplateLibrary,
    name: str,
    signer: DkimSigner | None = None,
    now: datetime | None = None,
    person: Candidate | None = None,
    message_id: int = 91234,
) -> SentMail:
    """Render, track, build and sign a starter exactly as ``sending.send_one`` does."""
    person, drip = person or candidate(), campaign()
    unsubscribe_url = TOKENS.unsubscribe_url(person.id, message_id)
    preferences_url = TOKENS.preferences_url(person.id, message_id)
    context = build_context(
        person,
        drip,
        SETTINGS,
        unsubscribe_url=unsubscribe_url,
        preferences_url=preferences_url,
        job=JOB,
        # As the sender fills them for a mail that shows them (feedback_request, reengage).
        rating_urls=TOKENS.rating_urls(message_id),
        reconsent_url=TOKENS.reconsent_url(person.id, message_id),
        # As the sender fills it for a referral mail (the names come from the referral row).
        referral={
            "url": TOKENS.referral_url(person.id, None, message_id),
            "opening": JOB["title"],
            "referrer_name": "Ana Lima",
            "referred_name": "Ben",
            "consent_url": TOKENS.referral_consent_url(person.id),
        },
    )
    mail = library.get(name).render(context)
    # Own links go direct, never through /c/ (as send_one keeps them).
    keep = tuple(f"{BASE_URL}/{path}/" for path in ("u", "p", "r", "k", "f/consent"))
    html = instrument(mail.html, TOKENS, message_id, keep=keep)
    from_name, from_email = recruiter_of(person, drip, SETTINGS)
    wire = build_mime(
        from_name=from_name,
        from_email=from_email,
        to_email=person.email,
        reply_to=from_email,
        subject=mail.subject,
        html=html,
        text=mail.text,
        message_id=new_message_id(SETTINGS.domain, message_id),
        date=now or datetime.now(UTC),
        unsubscribe_url=unsubscribe_url,
        list_id=f"{drip.name} <campaign-{drip.id}.{SETTINGS.list_id_domain}>",
    )
    if signer is not None:
        wire = signer.sign(wire)
    return SentMail(name, mail.subject, html, mail.text, unsubscribe_url, preferences_url, wire)


@pytest.fixture(scope="session")
def library() -> TemplateLibrary:
    """The starter library, compiled once for the session."""
    return TemplateLibrary(Config.TEMPLATES_DIR)


@pytest.fixture(scope="session")
def signer() -> DkimSigner:
    """A signer with a fresh 2048-bit key for the sender's domain."""
    require(shutil.which("openssl") is not None, "openssl")
    private_pem, _ = generate_key()
    return DkimSigner("nurture1", SETTINGS.domain, private_pem)
