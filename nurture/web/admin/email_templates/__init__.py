"""Admin: the template library, the editor with live preview, and test sends."""

from nurture.web.admin.email_templates.views import bp

__all__ = ["bp"]
