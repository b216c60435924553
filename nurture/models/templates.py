"""Email templates written in the admin (the starter files live in templates/emails)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nurture.models.base import Base


class EmailTemplate(Base):
    """A template edited in the admin; it extends a layout like the starter files do.

    Its own subject and parts are written in the team's default language
    (``NURTURE_DEFAULT_LANGUAGE``); ``translations`` hold the other languages.
    """

    __tablename__ = "email_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(300), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    translations: Mapped[list[TemplateTranslation]] = relationship(
        back_populates="template",
        order_by="TemplateTranslation.language",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


class TemplateTranslation(Base):
    """A template in one more language: the same mail, written for readers of ``language``."""

    __tablename__ = "template_translations"
    __table_args__ = (UniqueConstraint("template_id", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(
        ForeignKey("email_templates.id", ondelete="CASCADE"), index=True
    )
    # A BCP 47 code in its usual spelling (nurture.core.languages.normalise).
    language: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    template: Mapped[EmailTemplate] = relationship(back_populates="translations")


class TemplateVersion(Base):
    """One saved version of a template, kept by name so it outlives a reset to the starter."""

    __tablename__ = "email_template_versions"
    __table_args__ = (UniqueConstraint("name", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    number: Mapped[int]
    subject: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    # What happened: "saved", "restored version 3", "reset to the starter".
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
