"""Demo data for ``make run``: a few candidates, a 3-step silver-medalist drip, an admin."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.core.accounts.users import create_user
from nurture.core.campaigns import service as campaign_service
from nurture.core.content.rendering import TemplateLibrary
from nurture.models import AtsEventType, Campaign, User
from nurture.workflows.ats import handle_ats_event

DEMO_ADMIN = "admin@example.com"
DEMO_DRIP = "Silver medalists"

CANDIDATES = [
    {
        "email": "maya.okafor@example.org",
        "first_name": "Maya",
        "last_name": "Okafor",
        "role": "Senior Backend Engineer",
        "stage": "final interview",
        "timezone": "Europe/London",
        "strengths": "the clarity of your system-design walkthrough and how you weighed trade-offs",
        "skills": ["python", "postgresql", "distributed systems"],
        "tags": ["silver-medalist"],
        "recruiter_name": "Jordan Lee",
        "recruiter_email": "jordan.lee@example.com",
    },
    {
        "email": "lucas.martin@example.org",
        "first_name": "Lucas",
        "last_name": "Martin",
        "role": "Product Designer",
        "stage": "portfolio review",
        "timezone": "Europe/Paris",
        "strengths": "your portfolio's research-driven case studies",
        "skills": ["figma", "user research"],
        "tags": ["silver-medalist", "design"],
        "recruiter_name": "Priya Natarajan",
        "recruiter_email": "priya.n@example.com",
    },
    {
        "email": "sofia.rossi@example.org",
        "first_name": "Sofía",
        "last_name": "Rossi",
        "role": "Data Scientist",
        "stage": "technical interview",
        "timezone": "America/New_York",
        "strengths": "",
        "skills": ["python", "statistics", "sql"],
        "tags": ["silver-medalist"],
        "recruiter_name": "Jordan Lee",
        "recruiter_email": "jordan.lee@example.com",
    },
    {
        "email": "kenji.tanaka@example.org",
        "first_name": "Kenji",
        "last_name": "Tanaka",
        "role": "Engineering Manager",
        "stage": "onsite",
        "timezone": "Asia/Tokyo",
        "strengths": "how you described growing your last team from four to twelve people",
        "skills": ["leadership", "hiring"],
        "tags": ["silver-medalist", "leadership"],
        "recruiter_name": "Priya Natarajan",
        "recruiter_email": "priya.n@example.com",
    },
    {
        "email": "amara.diallo@example.org",
        "first_name": "Amara",
        "last_name": "",
        "role": "",
        "stage": "phone screen",
        "timezone": "Africa/Dakar",
        "skills": ["javascript"],
        "tags": [],
    },
]

DRIP: dict[str, Any] = {
    "name": DEMO_DRIP,
    "kind": "drip",
    "entry": {"ats_event": AtsEventType.REJECTED.value},
    # One rejection follow-up per rejection, whatever other rejection drips a team adds.
    "exclusive_group": "rejection-follow-up",
    "steps": [
        {"delay": "PT0S", "template": "rejection_followup"},
        {"delay": "P3D", "template": "talent_network_invite"},
        {"delay": "P90D", "template": "checkin_3_months"},
    ],
}


@dataclass
class DemoResult:
    """What seeding did."""

    created: bool
    lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for the terminal."""
        return "\n".join(self.lines)


def seed_demo(
    session: Session, config: dict[str, Any], now: datetime, instance: Path
) -> DemoResult:
    """Create the demo admin, drip and candidates once; a second run changes nothing."""
    if session.scalar(select(Campaign.id).where(Campaign.name == DEMO_DRIP)) is not None:
        return DemoResult(False, ["demo data is there already"])
    result = DemoResult(True)
    if session.scalar(select(User.id).where(User.email == DEMO_ADMIN)) is None:
        password = secrets.token_urlsafe(12)
        create_user(session, DEMO_ADMIN, password, "admin", now, name="Demo Admin")
        instance.mkdir(parents=True, exist_ok=True)
        credentials = instance / "demo-admin.txt"
        credentials.write_text(f"demo login: {DEMO_ADMIN} / {password}\n")
        credentials.chmod(0o600)
        result.lines.append(f"created demo admin {DEMO_ADMIN}")
    library = TemplateLibrary(config["TEMPLATES_DIR"])
    drip = campaign_service.create_campaign(session, DRIP, library, now)
    campaign_service.set_status(session, drip, "active", now)
    for data in CANDIDATES:
        handle_ats_event(session, {"type": AtsEventType.REJECTED.value, "candidate": data}, now)
    result.lines.append(
        f"created the {DEMO_DRIP!r} drip (3 steps) and enrolled {len(CANDIDATES)} candidates"
    )
    return result
