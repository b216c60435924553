"""The admin that recruiting ops use in the browser: a blueprint package per feature."""

from nurture.web.admin.blueprint import bp

__all__ = ["bp"]
