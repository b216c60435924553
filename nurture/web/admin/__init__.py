"""The admin that recruiting ops use in the browser: one package per feature."""

from nurture.web.admin import (  # noqa: F401 - each module adds its routes to bp
    broadcasts,
    campaigns,
    candidates,
    email_templates,
    home,
    imports,
    openings,
    segments,
    suppressions,
    users,
)
from nurture.web.admin.blueprint import bp

__all__ = ["bp"]
