"""Translations of the team's templates: one row per template and language, checked on save
exactly as the template itself is (syntax on the author's line, known variables, a subject,
an unsubscribe link, a trial render), and previewed in the language they are written in.

The template's own parts are written in the team's language (``NURTURE_DEFAULT_LANGUAGE``);
a translation may not be in that language (it would never be chosen), and each language
once. Starter files have their translations in folders (``templates/emails/de/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.core import languages
from nurture.core.content import templates as template_service
from nurture.core.content.mime import MailSettings
from nurture.core.content.rendering import STARTER_LANGUAGE, CompiledTemplate, TemplateLibrary
from nurture.core.errors import NotFound, ValidationError
from nurture.models import EmailTemplate, TemplateTranslation


@dataclass(frozen=True)
class Language:
    """One language a template is written in, as the translations page lists it."""

    code: str
    name: str
    own: bool  # the template's own language, not a translation
    subject: str
    updated_at: datetime | None = None


def language_name(code: str) -> str:
    """``Deutsch (de)`` for the languages nurture knows by name, else the code."""
    name = languages.NAMES.get(code) or languages.NAMES.get(languages.primary(code))
    return f"{name} ({code})" if name else code


def clean_language(value: str, field: str = "language") -> str:
    """A language code in its usual spelling; ValidationError naming ``field`` otherwise."""
    try:
        code = languages.normalise(value)
    except languages.BadLanguage as exc:
        raise ValidationError("not a language code", {field: str(exc)}) from None
    if not code:
        raise ValidationError("no language", {field: f"give a language code; {languages.EXAMPLE}"})
    return code


def template_languages(template: EmailTemplate, default_language: str) -> list[Language]:
    """The team template's own language first, then its translations by code."""
    own = Language(
        code=default_language,
        name=language_name(default_language),
        own=True,
        subject=template.subject or template_service.block_subject(template.html),
        updated_at=template.updated_at,
    )
    return [own] + [
        Language(
            code=row.language,
            name=language_name(row.language),
            own=False,
            subject=row.subject or template_service.block_subject(row.html),
            updated_at=row.updated_at,
        )
        for row in template.translations
    ]


def starter_languages(library: TemplateLibrary, name: str) -> list[Language]:
    """A starter's languages: English (the files), then the folders' translations."""
    listed = []
    for code in [STARTER_LANGUAGE, *library.file_languages(name)]:
        html = (
            library.file_sources(name)[0]
            if code == STARTER_LANGUAGE
            else (library.translated_file(name, code)[0])
        )
        listed.append(
            Language(
                code=code,
                name=language_name(code),
                own=code == STARTER_LANGUAGE,
                subject=template_service.block_subject(html),
            )
        )
    return listed


def find_translation(template: EmailTemplate, language: str) -> TemplateTranslation | None:
    """The template's translation into ``language``, or None."""
    return next((row for row in template.translations if row.language == language), None)


def translation_source(
    template: EmailTemplate, language: str, default_language: str
) -> template_service.Source:
    """What a translation is made of; a new one starts as a copy of the template's own parts,
    for the translator to write over."""
    row = find_translation(template, language)
    if row is None or language == default_language:
        return template_service.clean_source(template.html, template.text, template.subject)
    return template_service.clean_source(row.html, row.text, row.subject)


def starter_source(library: TemplateLibrary, name: str, language: str) -> template_service.Source:
    """A starter's parts in ``language`` (English: the files themselves); NotFound if none."""
    if language == STARTER_LANGUAGE:
        return template_service.starter_source(library, name)
    template_service.starter_source(library, name)  # NotFound for what is no starter
    if language not in library.file_languages(name):
        raise NotFound(f"starter {name} in {language}")
    html, text = library.translated_file(name, language)
    return template_service.Source(html=html, text=text or "", subject="")


def save_translation(
    session: Session,
    library: TemplateLibrary,
    settings: MailSettings,
    template: EmailTemplate,
    data: Mapping[str, Any],
    *,
    user_id: int | None,
    now: datetime,
) -> TemplateTranslation:
    """Create or update the translation ``data["language"]`` of ``template``; every field is
    checked first and nothing is written on error (ValidationError names each field)."""
    errors: dict[str, str] = {}
    code = ""
    try:
        code = clean_language(str(data.get("language") or ""))
    except ValidationError as exc:
        errors.update(exc.fields)
    if code and code == library.default_language:
        errors["language"] = (
            f"{code} is the team's language (NURTURE_DEFAULT_LANGUAGE): edit the template "
            "itself for it"
        )
    source = template_service.clean_source(data.get("html"), data.get("text"), data.get("subject"))
    try:
        compile_translation(library, settings, source, code or library.default_language)
    except ValidationError as exc:
        errors.update(exc.fields)
    if errors:
        raise ValidationError("the translation is not valid", errors)
    row = find_translation(template, code)
    if row is None:
        row = TemplateTranslation(language=code)
        template.translations.append(row)
    row.subject, row.html, row.text = source.subject, source.html, source.text
    row.updated_at = now
    row.updated_by_id = user_id
    template.updated_at = now  # the template has a new version: its list shows the change
    session.flush()
    return row


def compile_translation(
    library: TemplateLibrary, settings: MailSettings, source: template_service.Source, code: str
) -> CompiledTemplate:
    """Check and compile a translation as a save would, in its own language."""
    return template_service.compile_checked(library, settings, source, language=code)


def delete_translation(session: Session, template: EmailTemplate, language: str) -> None:
    """Remove a translation; readers of that language get the team's language again."""
    row = find_translation(template, language)
    if row is None:
        raise NotFound(f"{template.name} in {language}")
    template.translations.remove(row)
    session.flush()


def translations_of(session: Session, template_id: int) -> dict[str, TemplateTranslation]:
    """A team template's translations by language."""
    rows = session.scalars(
        select(TemplateTranslation).where(TemplateTranslation.template_id == template_id)
    )
    return {row.language: row for row in rows}
