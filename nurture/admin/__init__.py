"""The admin that recruiting ops use in the browser."""

from nurture.admin import (  # noqa: F401 - each module adds its routes to bp
    broadcasts,
    campaigns,
    candidates,
    imports,
    jobs,
    segments,
    suppressions,
    templates_editor,
    users,
    views,
)
from nurture.admin.blueprint import bp

__all__ = ["bp"]
