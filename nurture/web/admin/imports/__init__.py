"""Admin: CSV import of candidates — upload, column mapping, dry run, progress, report."""

from nurture.web.admin.imports.views import bp

__all__ = ["bp"]
