"""Admin: a template in each language, its translations edited, previewed and test-sent."""

from nurture.web.admin.translations.views import bp

__all__ = ["bp"]
