"""email_templates"""

from nurture.web.admin.email_templates.views import bp

__all__ = ["bp"]
