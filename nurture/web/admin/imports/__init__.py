"""imports"""

from nurture.web.admin.imports.views import bp

__all__ = ["bp"]
