"""What the law and the mailbox providers ask of every mail: sender identity, address, headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nurture.core.errors import Conflict
from nurture.models import Campaign, CampaignKind

# Setting -> how the admin names it. CAN-SPAM wants a valid postal address in every commercial
# mail; the footer and the From line need the company and a sender address.
REQUIRED_SETTINGS = {
    "COMPANY_NAME": "company name (NURTURE_COMPANY_NAME)",
    "POSTAL_ADDRESS": "postal address (NURTURE_POSTAL_ADDRESS)",
    "SENDER_EMAIL": "sender email (NURTURE_SENDER_EMAIL)",
}

# Mass mail, not a person writing to a person: auto-responders should stay quiet.
BULK_KINDS = (CampaignKind.BROADCAST,)


def missing_settings(config: Mapping[str, Any]) -> list[str]:
    """The sender-identity settings that are empty, as the admin names them."""
    missing = [
        label for key, label in REQUIRED_SETTINGS.items() if not str(config.get(key) or "").strip()
    ]
    sender = str(config.get("SENDER_EMAIL") or "").strip()
    if sender and "@" not in sender:
        missing.append(f"a valid sender email (NURTURE_SENDER_EMAIL is {sender!r})")
    return missing


def require_sender_identity(config: Mapping[str, Any]) -> None:
    """Raise Conflict naming every missing setting, so no campaign goes out without them."""
    missing = missing_settings(config)
    if missing:
        raise Conflict(
            "set the " + ", ".join(missing) + " before activating a campaign: every mail must "
            "say who sends it and carry a postal address"
        )


def extra_headers(campaign: Campaign) -> dict[str, str]:
    """Headers a campaign's mail carries besides the usual ones (``Precedence: bulk`` on bulk)."""
    if campaign.kind in BULK_KINDS:
        return {"Precedence": "bulk"}
    return {}
