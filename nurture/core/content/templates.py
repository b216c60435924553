"""Templates edited in the admin: listing, validation on save, previews, versions, test sends.

The starter files in ``templates/emails`` ship with nurture; the team's own templates are
``EmailTemplate`` rows that extend the same layout. A starter edited in the admin is a row of
the starter's own name, which the library prefers to the file until it is reset. Both are
compiled by the one ``TemplateLibrary``, which reaches the rows through ``sources_from``.
Every save keeps a ``TemplateVersion``, by name, so a reset or a bad edit can be undone.
"""

from __future__ import annotations

import difflib
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import meta, nodes
from lxml import etree
from lxml import html as lxml_html
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session

from nurture.core.content.mime import MailSettings
from nurture.core.content.personalisation import FALLBACKS, build_context
from nurture.core.content.rendering import (
    CompiledTemplate,
    RenderedMail,
    RenderError,
    Sources,
    TemplateLibrary,
    Translations,
    _blocks,
)
from nurture.core.errors import Conflict, NotFound, ValidationError
from nurture.core.tokens import Tokens
from nurture.models import (
    Campaign,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    EmailTemplate,
    Step,
    TemplateTranslation,
    TemplateVersion,
    User,
)

# Every variable a template may use, keyed exactly as build_context() produces them
# (tests/core/content/test_templates.py keeps the two equal): path -> (meaning, note).
VARIABLES: dict[str, tuple[str, str]] = {
    "candidate.first_name": ("First name", ""),
    "candidate.last_name": ("Last name", "may be empty"),
    "candidate.full_name": ("Full name", "if unknown: “there”"),
    "candidate.email": ("Email address", ""),
    "candidate.role": ("Role they applied for", "write “for {{ candidate.role }}”"),
    "candidate.stage": ("Furthest stage reached", "may be empty: guard with {% if %}"),
    "candidate.rejection_reason": ("Internal rejection reason", "never show it to the candidate"),
    "candidate.strengths": ("What the interviewers valued", "may be empty: guard with {% if %}"),
    "candidate.skills": ("List of skills", 'may be empty; e.g. candidate.skills[:3]|join(", ")'),
    "candidate.location": ("Where they live", "may be empty"),
    "recruiter.name": ("Sender's full name", ""),
    "recruiter.first_name": ("Sender's first name", "no fallback: prefer recruiter.name"),
    "recruiter.email": ("Sender's address, also the Reply-To", ""),
    "company.name": ("Company name", ""),
    "company.postal_address": ("Postal address", "the layout's footer shows it"),
    "company.careers_url": ("Careers page", ""),
    "company.talent_network_url": ("Talent-network sign-up page", ""),
    "campaign.name": ("Internal campaign name", "not meant for candidates"),
    "language": ("The mail's language code, e.g. de", "the layouts set <html lang> with it"),
    "footer.reason": ("“You are receiving this because…”", "in the mail's language"),
    "footer.unsubscribe": ("The word “Unsubscribe”", "in the mail's language"),
    "footer.preferences": ("The words “Email preferences”", "in the mail's language"),
    "footer.colon": ("A colon as the language writes it", "French: a space before it"),
    "job.title": ("Job title (job alerts)", ""),
    "job.location": ("Job location (job alerts)", ""),
    "job.url": ("Job posting (job alerts)", "the careers page outside job alerts"),
    "job.summary": ("Job summary (job alerts)", ""),
    "unsubscribe_url": ("One-click unsubscribe link", "the layouts put it in the footer"),
    "preferences_url": ("Email preference page", "the layouts put it in the footer"),
    "rating_urls": ("Five one-click answers, 1 to 5", "rating_urls[0] … rating_urls[4]"),
    "reconsent_url": ("“Keep me in the talent network” page", "the reconsent starter uses it"),
    "referral.url": ("Their “know someone for this role?” page", "signed per candidate and mail"),
    "referral.opening": ("The opening a referral is for", "“one of our open roles” if none"),
    "referral.referrer_name": ("Who recommended them", "referral mails only; may be empty"),
    "referral.referred_name": ("Who they recommended", "referral thank-you only; may be empty"),
    "referral.consent_url": ("“Yes, keep me posted” page", "the referral_consent starter uses it"),
}
# Objects that are not values themselves, e.g. "candidate" in {{ candidate.first_name }}.
_OBJECTS = {path.rsplit(".", 1)[0] for path in VARIABLES if "." in path}
_ROOTS = list(dict.fromkeys(path.split(".")[0] for path in VARIABLES))

NAME = re.compile(r"[A-Za-z0-9_-]+")
NAME_LENGTH = 100
DESCRIPTION_LENGTH = 300
SUBJECT_LENGTH = 70  # longer subjects are cut off in most inboxes

# A new template starts from this: the layout gives the footer and its unsubscribe link.
SKELETON = """{% extends "layout.html" %}
{% block preheader %}One line of preview text shown after the subject.{% endblock %}
{% block content %}
<p>Hi {{ candidate.first_name }},</p>
<p></p>
<p class="signature">All the best,<br>{{ recruiter.name }}<br>{{ company.name }}</p>
{% endblock %}
"""

_SUBJECT_BLOCK = re.compile(r"{%-?\s*block\s+subject\s*-?%}(.*?){%-?\s*endblock", re.DOTALL)
_README_ROW = re.compile(r"^\|\s*`([\w-]+)`\s*\|\s*(.+?)\s*\|\s*$", re.MULTILINE)


@dataclass(frozen=True)
class TemplateInfo:
    """One row of the template list: a starter file or one of the team's templates."""

    name: str
    kind: str  # "starter" or "team"
    subject: str
    description: str
    used_by: list[str]
    id: int | None = None
    updated_at: datetime | None = None
    updated_by: str = ""
    # A starter the team edited in place (the library sends the edit until it is reset).
    edited: bool = False


@dataclass(frozen=True)
class Source:
    """What a template is made of, as its author wrote it."""

    html: str
    text: str
    subject: str


@dataclass(frozen=True)
class Variable:
    """A documented variable, as the editor's sidebar lists it."""

    path: str
    meaning: str
    note: str


# --- resolving templates by name -------------------------------------------------------------


def sources_from(session: Session | scoped_session[Session]) -> Sources:
    """The ``TemplateLibrary.sources`` hook: an admin-edited template's parts by name."""

    def lookup(name: str) -> tuple[str, str | None, str] | None:
        row = session.execute(
            select(EmailTemplate.html, EmailTemplate.text, EmailTemplate.subject).where(
                EmailTemplate.name == name
            )
        ).first()
        if row is None:
            return None
        return row.html, row.text or None, row.subject

    return lookup


def translations_from(session: Session | scoped_session[Session]) -> Translations:
    """The ``TemplateLibrary.translations`` hook: a team template's translations by name."""

    def lookup(name: str) -> dict[str, tuple[str, str | None, str]]:
        rows = session.execute(
            select(
                TemplateTranslation.language,
                TemplateTranslation.html,
                TemplateTranslation.text,
                TemplateTranslation.subject,
            )
            .join(EmailTemplate, EmailTemplate.id == TemplateTranslation.template_id)
            .where(EmailTemplate.name == name)
        ).all()
        return {row.language: (row.html, row.text or None, row.subject) for row in rows}

    return lookup


# --- listing -----------------------------------------------------------------------------------


def campaigns_using(session: Session) -> dict[str, list[str]]:
    """Template name -> names of the campaigns (not archived) whose steps use it."""
    rows = session.execute(
        select(Step.template, Campaign.name)
        .join(Campaign, Campaign.id == Step.campaign_id)
        .where(Step.template != "", Campaign.status != CampaignStatus.ARCHIVED)
        .distinct()
        .order_by(Campaign.name)
    ).all()
    using: dict[str, list[str]] = {}
    for template, campaign in rows:
        using.setdefault(template, []).append(campaign)
    return using


def starter_descriptions(library: TemplateLibrary) -> dict[str, str]:
    """What each starter is for, from the table in ``templates/emails/README.md``."""
    readme = library.directory / "README.md"
    if not readme.is_file():
        return {}
    return {
        name: re.sub(r"[`*]", "", purpose)
        for name, purpose in _README_ROW.findall(readme.read_text("utf-8"))
    }


def block_subject(html: str) -> str:
    """The ``{% block subject %}`` of an HTML template as written, or ""."""
    found = _SUBJECT_BLOCK.search(html)
    return " ".join(found.group(1).split()) if found else ""


def list_templates(
    session: Session, library: TemplateLibrary
) -> tuple[list[TemplateInfo], list[TemplateInfo]]:
    """The starter library and the team's templates, each by name."""
    using = campaigns_using(session)
    purposes = starter_descriptions(library)
    rows = session.execute(
        select(EmailTemplate, User.name, User.email)
        .outerjoin(User, User.id == EmailTemplate.updated_by_id)
        .order_by(EmailTemplate.name)
    ).all()
    edits = {template.name: (template, name or email or "") for template, name, email in rows}
    starters = []
    for name in library.names():
        html, _ = library.file_sources(name)
        edit, by = edits.pop(name, (None, ""))
        starters.append(
            TemplateInfo(
                name=name,
                kind="starter",
                subject=(edit.subject or block_subject(edit.html)) if edit else block_subject(html),
                description=purposes.get(name, ""),
                used_by=using.get(name, []),
                id=edit.id if edit else None,
                updated_at=edit.updated_at if edit else None,
                updated_by=by,
                edited=edit is not None,
            )
        )
    team = [
        TemplateInfo(
            name=template.name,
            kind="team",
            subject=template.subject or block_subject(template.html),
            description=template.description,
            used_by=using.get(template.name, []),
            id=template.id,
            updated_at=template.updated_at,
            updated_by=by,
        )
        for template, by in edits.values()
    ]
    return starters, team


def get_template(session: Session, template_id: int) -> EmailTemplate:
    """One of the team's templates, or NotFound."""
    template = session.get(EmailTemplate, template_id)
    if template is None:
        raise NotFound(f"template {template_id}")
    return template


def starter_source(library: TemplateLibrary, name: str) -> Source:
    """The parts of a starter file (its subject is the block in its HTML)."""
    try:
        html, text = library.file_sources(name)
    except ValidationError:
        raise NotFound(f"starter {name}") from None
    if name not in library.names():  # layouts and partials are files too, but not starters
        raise NotFound(f"starter {name}")
    return Source(html=html, text=text or "", subject="")


def variables(company_name: str) -> list[Variable]:
    """The documented variables with their fallbacks, for the editor's sidebar."""
    listed = []
    for path, (meaning, note) in VARIABLES.items():
        if path in FALLBACKS:
            fallback = FALLBACKS[path].format(company=company_name)
            note = f"if missing: “{fallback}”" + (f"; {note}" if note else "")
        listed.append(Variable(path=path, meaning=meaning, note=note))
    return listed


# --- validation -------------------------------------------------------------------------------


def _chain(node: nodes.Node) -> tuple[nodes.Node, list[str], list[nodes.Node]]:
    """Unwind ``a.b["c"]`` to (the innermost node, ["b", "c"], dynamic indexes met on the way)."""
    segments: list[str] = []
    dynamic: list[nodes.Node] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            segments.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            segments.append(node.arg.value)
        else:
            # x.skills[0].upper: only the part below a computed index names a variable.
            dynamic.append(node.arg)
            segments = []
        node = node.node
    segments.reverse()
    return node, segments, dynamic


def variable_paths(tree: nodes.Template) -> list[tuple[str, int]]:
    """Every context variable a template reads, as (dotted path, line), in source order."""
    context_names = meta.find_undeclared_variables(tree)  # loop variables and {% set %} excluded
    found: list[tuple[str, int]] = []

    def walk(node: nodes.Node) -> None:
        if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
            inner, segments, dynamic = _chain(node)
            if isinstance(inner, nodes.Name):
                if inner.ctx == "load" and inner.name in context_names:
                    found.append((".".join([inner.name, *segments]), inner.lineno))
            else:
                walk(inner)
            for index in dynamic:
                walk(index)
            return
        for child in node.iter_child_nodes():
            walk(child)

    walk(tree)
    return sorted(found, key=lambda item: item[1])


def _known_part(path: str) -> str | None:
    """None when ``path`` reads a documented variable, else the first part that is unknown."""
    parts = path.split(".")
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        if prefix in VARIABLES:
            return None  # anything after is used on the value: .upper(), [0], …
        if prefix not in _OBJECTS:
            return prefix
    return None  # the object itself, e.g. passed to a filter


def _did_you_mean(unknown: str) -> str:
    """A documented sibling spelt almost the same (``frist_name`` → ``first_name``), or ""."""
    parent, _, last = unknown.rpartition(".")
    siblings = {
        path.rpartition(".")[2]: path
        for path in [*VARIABLES, *_ROOTS]
        if path.rpartition(".")[0] == parent
    }
    close = difflib.get_close_matches(last, siblings, n=1, cutoff=0.75)
    if close:
        return f" (did you mean {siblings[close[0]]}?)"
    # {{ first_name }} for {{ candidate.first_name }}: the name is right, its object missing.
    nested = [path for path in VARIABLES if path.endswith(f".{unknown}")]
    return f" (did you mean {' or '.join(nested)}?)" if nested and not parent else ""


def unknown_variables(tree: nodes.Template) -> str:
    """What a template reads that nobody supplies: "line N: unknown variable x; known: …"."""
    problems: list[str] = []
    seen: set[str] = set()
    known: set[str] = set()
    for path, line in variable_paths(tree):
        unknown = _known_part(path)
        if unknown is None or unknown in seen:
            continue
        seen.add(unknown)
        hint = _did_you_mean(unknown)
        problems.append(f"line {line}: unknown variable {unknown}{hint}")
        root = unknown.split(".")[0]
        children = [known_path for known_path in VARIABLES if known_path.startswith(root + ".")]
        known.update(children or _ROOTS)
    if not problems:
        return ""
    ordered = [path for path in [*_ROOTS, *VARIABLES] if path in known]
    return "; ".join(problems) + "; known: " + ", ".join(dict.fromkeys(ordered))


def _reads(tree: nodes.Template, name: str) -> bool:
    """Whether the template reads the context variable ``name`` anywhere."""
    return any(node.name == name for node in tree.find_all(nodes.Name))


def _has_unsubscribe(library: TemplateLibrary, tree: nodes.Template, text: bool) -> bool:
    """Whether the mail links to ``unsubscribe_url``, itself or through the layout it extends."""
    if _reads(tree, "unsubscribe_url"):
        return True
    extends = tree.find(nodes.Extends)
    if extends is None or not isinstance(extends.template, nodes.Const):
        return False
    layout = str(extends.template.value)
    path = library.directory / layout
    if not re.fullmatch(r"[\w.-]+", layout) or not path.is_file():
        return False
    try:
        return _reads(
            library.check(path.read_text("utf-8"), "layout", text=text), "unsubscribe_url"
        )
    except ValidationError:
        return False


def _has_subject_block(tree: nodes.Template) -> bool:
    """Whether the HTML fills ``{% block subject %}``."""
    return any(block.name == "subject" and block.body for block in tree.find_all(nodes.Block))


def clean_source(html: str | None, text: str | None, subject: str | None) -> Source:
    """The parts as stored: Unix line ends (browsers send CRLF), a one-line subject."""

    def lines(value: str | None) -> str:
        return (value or "").replace("\r\n", "\n").replace("\r", "\n")

    text_part = lines(text)
    return Source(
        html=lines(html),
        text=text_part if text_part.strip() else "",
        subject=" ".join((subject or "").split()),
    )


def compile_checked(
    library: TemplateLibrary, settings: MailSettings, source: Source, language: str = ""
) -> CompiledTemplate:
    """Compile a template after every check a save makes; ValidationError names each field.

    Errors carry the line the author wrote; unknown variables, a missing subject and a missing
    unsubscribe link are refused; a trial render for a sample candidate catches what only
    shows at render time, so a saved template never fails a send.
    """
    errors: dict[str, str] = {}
    if not source.html.strip():
        errors["html"] = "write the HTML of the mail (a new template starts from the layout)"
    trees = _parsed_parts(library, source, errors)
    if "html" in trees and "html" not in errors:
        errors.update(_html_problems(library, source, trees["html"]))
    if "text" in trees and "text" not in errors:
        if not _has_unsubscribe(library, trees["text"], text=True):
            errors["text"] = (
                "the text part has no unsubscribe link: extend layout.txt or write "
                "{{ unsubscribe_url }} (or leave the text empty to generate it)"
            )
    if errors:
        raise ValidationError("the template is not valid", errors)
    compiled = library.compile(
        source.html, source.text or None, subject=source.subject, language=language
    )
    _trial_render(compiled, settings, source)
    return compiled


def _parsed_parts(
    library: TemplateLibrary, source: Source, errors: dict[str, str]
) -> dict[str, nodes.Template]:
    """Each written part (subject, html, text) parsed; syntax errors and unknown variables are
    added to ``errors`` at the part's name."""
    trees: dict[str, nodes.Template] = {}
    for field, part, is_text in (
        ("subject", source.subject, True),
        ("html", source.html, False),
        ("text", source.text, True),
    ):
        if not part.strip():
            continue
        try:
            trees[field] = library.check(part, field, text=is_text)
        except ValidationError as exc:
            errors.update(exc.fields)
            continue
        problem = unknown_variables(trees[field]) or whole_objects(trees[field])
        if problem:
            errors[field] = problem
    return trees


def _html_problems(
    library: TemplateLibrary, source: Source, html: nodes.Template
) -> dict[str, str]:
    """What a well-formed HTML part still lacks: a subject somewhere, an unsubscribe link."""
    errors: dict[str, str] = {}
    if not source.subject and not _has_subject_block(html):
        errors["subject"] = "give a subject line, or a {% block subject %} in the HTML"
    if not _has_unsubscribe(library, html, text=False):
        errors["html"] = (
            "the mail has no unsubscribe link: extend layout.html (its footer has one) "
            "or link to {{ unsubscribe_url }}"
        )
    return errors


def step_problems(
    library: TemplateLibrary,
    settings: MailSettings,
    *,
    template: str = "",
    subject: str = "",
    html: str = "",
    text: str = "",
) -> dict[str, str]:
    """What is wrong with a campaign step's content, by field; {} when it can be sent.

    A step names a template (and may give its own subject) or carries its own HTML. The parts
    written here are checked as a saved template's are: syntax on the author's line, variables
    that exist, and a trial render for the sample candidate within the sandbox's limits.
    """
    errors: dict[str, str] = {}
    for field, part, is_text in (
        ("subject", subject, True),
        ("html", html, False),
        ("text", text, True),
    ):
        if not part.strip():
            continue
        try:
            problem = unknown_variables(library.check(part, field, text=is_text))
        except ValidationError as exc:
            errors.update(exc.fields)
            continue
        if problem:
            errors[field] = problem
    if errors:
        return errors
    try:
        if template:
            compiled = library.get(template, subject=subject)
        else:
            compiled = library.compile(html, text or None, subject=subject)
        _trial_render(compiled, settings, Source(html=html, text=text, subject=subject))
    except ValidationError as exc:
        errors.update(exc.fields)
    return errors


def trial_settings(config: Mapping[str, Any]) -> MailSettings:
    """The deployment's mail settings for a trial render, with stand-ins for what is not set."""
    stand_ins = {
        "COMPANY_NAME": "Example",
        "POSTAL_ADDRESS": "1 Example Street",
        "CAREERS_URL": "https://careers.example.com",
        "TALENT_NETWORK_URL": "https://careers.example.com/network",
        "SENDER_NAME": "Example Talent",
        "SENDER_EMAIL": "talent@example.com",
        "LIST_ID_DOMAIN": "example.com",
        "BASE_URL": "https://nurture.invalid",
    }
    return MailSettings.from_config({**stand_ins, **config})


def _trial_render(compiled: CompiledTemplate, settings: MailSettings, source: Source) -> None:
    """Render once for the sample candidate, within the sandbox's limits; what fails here would
    fail every send, so it is refused on save (a limit by name, e.g. the output limit)."""
    context = preview_context(settings, None, sample_candidate(), language=compiled.language)
    try:
        mail = compiled.render(context)
    except RenderError as exc:
        # A subject from the HTML's {% block subject %} is the HTML's to fix.
        field = "html" if exc.field == "subject" and not source.subject else exc.field
        raise ValidationError("the template cannot be rendered", {field: exc.problem}) from None
    # What only Python would print ("None", "['python']") must never reach a candidate.
    found = leaks(mail)
    if found:
        part = next((p for p in ("subject", "text") if f"the {p} " in found[0]), "html")
        field = part if part == "html" or getattr(source, part) else "html"
        raise ValidationError(
            "the template cannot be rendered",
            {
                field: f"for a sample candidate {found[0]}: print one value, "
                "or guard it with {% if … %}"
            },
        )


def _name_problem(
    session: Session,
    library: TemplateLibrary,
    name: str,
    template: EmailTemplate | None,
    starter: bool = False,
) -> str | None:
    """What is wrong with ``name`` for this template, or None."""
    if starter:
        # A starter edited in place keeps the starter's name: campaigns find it by that name.
        return None if name in library.names() else f"no starter named {name}"
    if not name:
        return "give the template a name, e.g. silver-followup"
    if len(name) > NAME_LENGTH or not NAME.fullmatch(name):
        return f"use letters, digits, - and _ only (at most {NAME_LENGTH}), e.g. silver-followup"
    files = {path.stem.lower() for path in library.directory.iterdir() if path.is_file()}
    if name.lower() in files:
        return f"{name} is the name of a starter file; choose another name"
    taken = session.scalar(
        select(EmailTemplate.id).where(func.lower(EmailTemplate.name) == name.lower())
    )
    if taken is not None and (template is None or taken != template.id):
        return f"there is already a template named {name}"
    if template is not None and template.name != name:
        users = campaigns_using(session).get(template.name)
        if users:
            return f"campaigns use it as {template.name}: {', '.join(users)}; keep the name"
    return None


def save_template(
    session: Session,
    library: TemplateLibrary,
    settings: MailSettings,
    data: Mapping[str, Any],
    *,
    template: EmailTemplate | None,
    user_id: int | None,
    now: datetime,
    starter: bool = False,
    note: str = "saved",
) -> EmailTemplate:
    """Validate every field, then create or update a template and keep the new version;
    nothing is written on error. With ``starter`` it is the starter of that name, edited in
    place (``template`` is its earlier edit, if any)."""
    name = str(data.get("name") or "").strip()
    description = " ".join(str(data.get("description") or "").split())
    source = clean_source(data.get("html"), data.get("text"), data.get("subject"))
    errors: dict[str, str] = {}
    problem = _name_problem(session, library, name, template, starter)
    if problem:
        errors["name"] = problem
    if len(description) > DESCRIPTION_LENGTH:
        errors["description"] = f"keep it under {DESCRIPTION_LENGTH} characters"
    try:
        compile_checked(library, settings, source)
    except ValidationError as exc:
        errors.update(exc.fields)
    if errors:
        raise ValidationError("the template is not valid", errors)
    if template is None:
        template = EmailTemplate(created_at=now)
        session.add(template)
    elif template.name != name:
        # The history follows the template to its new name.
        session.execute(
            update(TemplateVersion).where(TemplateVersion.name == template.name).values(name=name)
        )
    template.name = name
    template.description = description
    template.subject = source.subject
    template.html = source.html
    template.text = source.text
    template.updated_at = now
    template.updated_by_id = user_id
    try:
        session.flush()
    except IntegrityError:
        # Someone saved the same name between our check and this write.
        session.rollback()
        raise ValidationError(
            "the name is taken", {"name": f"there is already a template named {name}"}
        ) from None
    record_version(session, name, source, user_id, now, note)
    return template


def delete_template(session: Session, template: EmailTemplate) -> None:
    """Delete a template no campaign uses, with its history; Conflict names the campaigns
    that use it."""
    users = campaigns_using(session).get(template.name)
    if users:
        raise Conflict(f"{template.name} is used by {', '.join(users)}; change their steps first")
    session.execute(delete(TemplateVersion).where(TemplateVersion.name == template.name))
    session.delete(template)
    session.flush()


# --- starters edited in place, and every version kept -----------------------------------------


def edit_of(session: Session, name: str) -> EmailTemplate | None:
    """The team's edit of the starter ``name``, or None while the file is what is sent."""
    return session.scalar(select(EmailTemplate).where(EmailTemplate.name == name))


def current_source(
    session: Session, library: TemplateLibrary, name: str
) -> tuple[Source, EmailTemplate | None]:
    """What the starter ``name`` sends now (the team's edit, else the file) and the edit."""
    edit = edit_of(session, name)
    if edit is not None:
        return clean_source(edit.html, edit.text, edit.subject), edit
    return starter_source(library, name), None


def record_version(
    session: Session,
    name: str,
    source: Source,
    user_id: int | None,
    now: datetime,
    note: str = "saved",
) -> TemplateVersion:
    """Keep this content as the next version of ``name``."""
    last = session.scalar(
        select(func.max(TemplateVersion.number)).where(TemplateVersion.name == name)
    )
    version = TemplateVersion(
        name=name,
        number=(last or 0) + 1,
        subject=source.subject,
        html=source.html,
        text=source.text,
        note=note[:200],
        created_at=now,
        created_by_id=user_id,
    )
    session.add(version)
    session.flush()
    return version


def versions(session: Session, name: str, limit: int = 50) -> list[Any]:
    """The saved versions of ``name``, newest first, with who saved each."""
    return list(
        session.execute(
            select(TemplateVersion, User.name, User.email)
            .outerjoin(User, User.id == TemplateVersion.created_by_id)
            .where(TemplateVersion.name == name)
            .order_by(TemplateVersion.number.desc())
            .limit(limit)
        ).all()
    )


def reset_starter(
    session: Session, library: TemplateLibrary, name: str, user_id: int | None, now: datetime
) -> None:
    """Send the starter file again: the team's edit goes (its versions stay, to restore)."""
    source = starter_source(library, name)
    edit = edit_of(session, name)
    if edit is None:
        raise Conflict(f"{name} is the starter as shipped already")
    session.delete(edit)
    record_version(session, name, source, user_id, now, "reset to the starter")


def restore_version(
    session: Session,
    library: TemplateLibrary,
    settings: MailSettings,
    version_id: int,
    user_id: int | None,
    now: datetime,
) -> EmailTemplate:
    """Make an earlier version current again, checked as any save is."""
    version = session.get(TemplateVersion, version_id)
    if version is None:
        raise NotFound(f"template version {version_id}")
    starter = version.name in library.names()
    template = edit_of(session, version.name)
    return save_template(
        session,
        library,
        settings,
        {
            "name": version.name,
            "description": template.description if template is not None else "",
            "subject": version.subject,
            "html": version.html,
            "text": version.text,
        },
        template=template,
        user_id=user_id,
        now=now,
        starter=starter,
        note=f"restored version {version.number}",
    )


def free_name(session: Session, base: str) -> str:
    """``base``, or ``base_2``, ``base_3``… whichever no template has yet."""
    base = base[: NAME_LENGTH - 4]
    taken = set(
        session.scalars(
            select(func.lower(EmailTemplate.name)).where(
                func.lower(EmailTemplate.name).like(f"{base.lower()}%")
            )
        )
    )
    name, number = base, 1
    while name.lower() in taken:
        number += 1
        name = f"{base}_{number}"
    return name


def duplicate_starter(
    session: Session,
    library: TemplateLibrary,
    settings: MailSettings,
    name: str,
    *,
    user_id: int | None,
    now: datetime,
) -> EmailTemplate:
    """A team copy of a starter as it sends now, ready to edit (``<name>_copy``)."""
    source, _ = current_source(session, library, name)
    return save_template(
        session,
        library,
        settings,
        {
            "name": free_name(session, f"{name}_copy"),
            "description": f"Copy of the starter {name}",
            "subject": "",
            "html": source.html,
            "text": source.text,
        },
        template=None,
        user_id=user_id,
        now=now,
    )


# --- previews and test sends ------------------------------------------------------------------


def sample_candidate() -> Candidate:
    """A made-up candidate for previews when the network has nobody in it yet (never saved)."""
    return Candidate(
        email="maya.okafor@example.org",
        first_name="Maya",
        last_name="Okafor",
        role="Senior Backend Engineer",
        stage="final interview",
        rejection_reason="",
        strengths="The clarity of your system-design walkthrough.",
        skills=["python", "postgresql", "distributed systems"],
        location="London",
        recruiter_name="",
        recruiter_email="",
        status=CandidateStatus.ACTIVE,
    )


def find_candidate(session: Session, query: str) -> Candidate | None:
    """The candidate a preview is for: by address (or its start), else the first active one."""
    query = (query or "").strip().lower()
    usable = Candidate.status != CandidateStatus.ERASED
    if not query:
        return session.scalar(
            select(Candidate)
            .where(Candidate.status == CandidateStatus.ACTIVE)
            .order_by(Candidate.id)
            .limit(1)
        )
    exact = session.scalar(select(Candidate).where(Candidate.email == query, usable))
    if exact is not None:
        return exact
    return session.scalar(
        select(Candidate)
        .where(Candidate.email.like(_like_prefix(query), escape="\\"), usable)
        .order_by(Candidate.email)
        .limit(1)
    )


def _like_prefix(query: str) -> str:
    """A LIKE pattern for ``query…`` in which ``%`` and ``_`` are meant literally."""
    return re.sub(r"([\\%_])", r"\\\1", query) + "%"


def search_candidates(session: Session, query: str, limit: int = 8) -> list[tuple[str, str]]:
    """(email, name) of candidates whose address or name starts with ``query``."""
    query = (query or "").strip().lower()
    if not query:
        return []
    pattern = _like_prefix(query)
    rows = session.execute(
        select(Candidate.email, Candidate.first_name, Candidate.last_name)
        .where(
            Candidate.status != CandidateStatus.ERASED,
            or_(
                Candidate.email.like(pattern, escape="\\"),
                func.lower(Candidate.first_name).like(pattern, escape="\\"),
                func.lower(Candidate.last_name).like(pattern, escape="\\"),
            ),
        )
        .order_by(Candidate.email)
        .limit(limit)
    ).all()
    return [(email, " ".join(filter(None, (first, last)))) for email, first, last in rows]


def preview_campaign() -> Campaign:
    """The campaign a preview or test send pretends to belong to."""
    # Never added to a session: build_context only reads its name and sender settings.
    return Campaign(
        name="Template preview", sender_is_recruiter=True, sender_name="", sender_email=""
    )


def sample_job(settings: MailSettings) -> dict[str, str]:
    """An opening for previews: job alerts are matched to a real one only when they are sent."""
    return {
        "title": "Senior Data Engineer",
        "location": "Remote, Europe",
        "url": settings.careers_url,
        "summary": "Build the pipelines our analytics and matching run on, with a small, "
        "senior team.",
    }


def uses_job(source: Source) -> bool:
    """Whether a template shows a job opening (its preview then uses ``sample_job``)."""
    return "job." in source.html or "job." in source.subject or "job." in source.text


def preview_context(
    settings: MailSettings,
    tokens: Tokens | None,
    candidate: Candidate,
    job: dict[str, Any] | None = None,
    language: str = "",
) -> dict[str, Any]:
    """The real context for ``candidate`` (links signed by ``tokens``; inert without them),
    with ``job`` (a job alert's opening) or a sample one, for a mail in ``language`` (the
    team's when "")."""
    if tokens is None:
        tokens = Tokens(secrets.token_hex(16), settings.base_url)  # links that verify nowhere
    candidate_id = candidate.id or 0
    return build_context(
        candidate,
        preview_campaign(),
        settings,
        unsubscribe_url=tokens.unsubscribe_url(candidate_id, None),
        preferences_url=tokens.preferences_url(candidate_id, None),
        job=job or sample_job(settings),
        # Sample names: the referral mails name real people only when they are sent.
        referral={
            "url": tokens.referral_url(candidate_id, None, None),
            "opening": (job or sample_job(settings))["title"],
            "referrer_name": "Ana Lima",
            "referred_name": "Ben",
            "consent_url": tokens.referral_consent_url(candidate_id),
        },
        language=language,
    )


def render_preview(
    compiled: CompiledTemplate,
    settings: MailSettings,
    tokens: Tokens,
    candidate: Candidate,
    job: dict[str, Any] | None = None,
) -> RenderedMail:
    """What ``candidate`` would receive; links are left as written (no tracking, no pixel)."""
    return compiled.render(
        preview_context(settings, tokens, candidate, job, language=compiled.language)
    )


def subject_warning(mail: RenderedMail) -> str:
    """A hint when the subject will be cut off in the inbox, else ""."""
    if len(mail.subject) > SUBJECT_LENGTH:
        return (
            f"The subject is {len(mail.subject)} characters for this candidate; "
            f"inboxes cut it after about {SUBJECT_LENGTH}."
        )
    return ""


def flatten_keys(context: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the leaves of a nested context (lists are leaves)."""
    for key, value in context.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten_keys(value, f"{path}.")
        else:
            yield path


# --- what a mail says: reprs, empty values, the text part, sample copy -----------------------

# Variables that are empty for some candidates ("may be empty" above): printed without a guard,
# the mail reads "right up to the ." for them.
OPTIONAL = (
    "candidate.last_name",
    "candidate.stage",
    "candidate.strengths",
    "candidate.skills",
    "candidate.location",
    "recruiter.first_name",
)
# Objects whose printing shows a Python dict to the candidate.
_WHOLE = {"candidate", "recruiter", "company", "campaign", "job"}
# What only Python would write: a dict or list repr, None, an undefined marker, an object.
_LEAK = re.compile(r"\bNone\b|\[\s*'|\{\s*'|<(?:built-in|bound method|function|[\w.]+ object)")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_LINK_REF = re.compile(r"^\s*\[\d+\]:.*$|\[\d+\]", re.MULTILINE)
_RULE_LINE = re.compile(r"^\s*[-=*_#|]+\s*$", re.MULTILINE)
SAME_WORDING = 0.8  # share of a paragraph's words the other part must say, in order
SAMPLE_MARK = "Sample copy"  # a starter whose source says so in a {# comment #} holds sample copy
# Within such a starter, the sample paragraphs sit between {# sample #} and {# end sample #}.
_SAMPLE_SPAN = re.compile(r"{#-?\s*sample\s*-?#}(.*?){#-?\s*end sample\s*-?#}", re.S | re.I)


def _paths_in(node: nodes.Node) -> list[tuple[str, int]]:
    """Context variables an expression reads, as (dotted path, line)."""
    found: list[tuple[str, int]] = []

    def walk(item: nodes.Node) -> None:
        if isinstance(item, nodes.Getattr | nodes.Getitem | nodes.Name):
            inner, segments, dynamic = _chain(item)
            if isinstance(inner, nodes.Name):
                if inner.ctx == "load":
                    found.append((".".join([inner.name, *segments]), inner.lineno))
            else:
                walk(inner)
            for index in dynamic:
                walk(index)
            return
        for child in item.iter_child_nodes():
            walk(child)

    walk(node)
    return found


def _guards_itself(expr: nodes.Node) -> bool:
    """``{{ x or "…" }}``, ``{{ x if x }}`` and ``{{ x|default(…) }}`` say what empty prints."""
    if isinstance(expr, nodes.Or | nodes.CondExpr):
        return True
    return any(f.name in ("default", "d") for f in expr.find_all(nodes.Filter)) or (
        isinstance(expr, nodes.Filter) and expr.name in ("default", "d")
    )


def _outputs(tree: nodes.Template) -> list[tuple[nodes.Node, frozenset[str]]]:
    """Every printed expression with the variables the ``if``/``for`` around it test."""
    found: list[tuple[nodes.Node, frozenset[str]]] = []

    def walk(node: nodes.Node, guarded: frozenset[str]) -> None:
        if isinstance(node, nodes.If):
            inner = guarded | {path for path, _ in _paths_in(node.test)}
            for child in node.body:
                walk(child, inner)
            for branch in node.elif_:
                walk(branch, guarded)
            for child in node.else_:
                walk(child, guarded)
            return
        if isinstance(node, nodes.For):
            inner = guarded | {path for path, _ in _paths_in(node.iter)}
            for child in node.body:
                walk(child, inner)
            for child in node.else_:
                walk(child, guarded)
            return
        if isinstance(node, nodes.Output):
            for expr in node.nodes:
                if not isinstance(expr, nodes.TemplateData):
                    found.append((expr, guarded))
            return
        for child in node.iter_child_nodes():
            walk(child, guarded)

    walk(tree, frozenset())
    return found


def whole_objects(tree: nodes.Template) -> str:
    """An error when a template prints a whole object (``{{ candidate }}``), else ""."""
    for expr, _ in _outputs(tree):
        for path, line in _paths_in(expr):
            if path in _WHOLE and not isinstance(expr, nodes.Filter | nodes.Call):
                example = next(p for p in VARIABLES if p.startswith(path + "."))
                return (
                    f"line {line}: {{{{ {path} }}}} prints the whole {path} record; "
                    f"print one value, e.g. {{{{ {example} }}}}"
                )
    return ""


def unguarded(tree: nodes.Template) -> list[tuple[str, int]]:
    """Optional variables printed outside an ``{% if %}`` on them: (path, line)."""
    found: list[tuple[str, int]] = []
    for expr, guarded in _outputs(tree):
        if _guards_itself(expr):
            continue
        for path, line in _paths_in(expr):
            base = next((o for o in OPTIONAL if path == o or path.startswith(o + ".")), None)
            if base and base not in guarded and (base, line) not in found:
                found.append((base, line))
    return found


def shows_internal_reason(tree: nodes.Template) -> int | None:
    """The line where the internal rejection reason is printed for the candidate, if any."""
    for expr, _ in _outputs(tree):
        for path, line in _paths_in(expr):
            if path == "candidate.rejection_reason":
                return line
    return None


def leaks(mail: RenderedMail) -> list[str]:
    """Bits of a rendered mail only Python would write (``None``, ``['a', 'b']``), in context."""
    found = []
    html_text = " ".join(text for text, _ in _html_paragraphs(mail.html))
    parts = (("subject", mail.subject), ("HTML", html_text), ("text", mail.text))
    for part, text in parts:
        for hit in _LEAK.finditer(text):
            start, end = max(0, hit.start() - 30), min(len(text), hit.end() + 30)
            snippet = " ".join(text[start:end].split())
            found.append(f"the {part} shows “…{snippet}…”")
    return found[:3]


def _paragraphs(text: str) -> list[tuple[str, list[str]]]:
    """A text part's paragraphs as (text, lower-case words); links and rules left out."""
    text = _RULE_LINE.sub("", _LINK_REF.sub(" ", text))
    text = re.sub(r"https?://\S+", " ", text)
    found = []
    for block in re.split(r"\n\s*\n", text):
        words = [w.lower() for w in _WORD.findall(block)]
        if len(words) >= 4:
            found.append((" ".join(block.split()), words))
    return found


def _html_paragraphs(html: str) -> list[tuple[str, list[str]]]:
    """The headings, paragraphs and list items of a mail's card (the layout's frame left out)."""
    try:
        doc = lxml_html.fromstring(html or "<p></p>")
    except (etree.ParserError, ValueError):
        return []
    card = next(iter(doc.find_class("card")), doc)
    found = []
    for element in card.iter("h1", "h2", "h3", "p", "li"):
        text = " ".join(element.text_content().split())
        words = [w.lower() for w in _WORD.findall(text)]
        if len(words) >= 4:
            found.append((text, words))
    return found


def _card_words(html: str) -> list[str]:
    """Every word of a mail's card, in order."""
    try:
        doc = lxml_html.fromstring(html or "<p></p>")
    except (etree.ParserError, ValueError):
        return []
    card = next(iter(doc.find_class("card")), doc)
    return [w.lower() for w in _WORD.findall(card.text_content())]


def _said(words: list[str], other: list[str]) -> bool:
    """Whether ``other`` says ``words`` (most of them, in order)."""
    blocks = difflib.SequenceMatcher(None, words, other, autojunk=False).get_matching_blocks()
    return sum(block.size for block in blocks) / len(words) >= SAME_WORDING


def _quote(text: str, limit: int = 90) -> str:
    return f"“{text if len(text) <= limit else text[: limit - 1].rstrip() + '…'}”"


_EMPTY_HTML = '{% extends "layout.html" %}{% block subject %}-{% endblock %}'
_EMPTY_TEXT = '{% extends "layout.txt" %}'


def text_drift(library: TemplateLibrary, compiled: CompiledTemplate, context: Any) -> str:
    """What the written plain-text part and the HTML do not both say, or "" (also when the
    text part is generated from the HTML)."""
    if compiled.text is None:
        return ""
    html_only = _html_paragraphs(compiled.html.render(context))
    text_words = _paragraphs(compiled.text.render(context))
    try:
        frame = library.compile(_EMPTY_HTML, _EMPTY_TEXT)
        text_frame = _paragraphs(frame.text.render(context)) if frame.text else []
    except ValidationError:  # no layout to compare with: compare everything
        text_frame = []
    # The text layout's footer says what the HTML's footer says, outside the card.
    text_only = [p for p in text_words if not any(_said(p[1], f[1]) for f in text_frame)]
    all_text = [w for _, words in text_only for w in words]
    # The text may say what the HTML puts in buttons and table cells, not only in paragraphs.
    all_html = _card_words(compiled.html.render(context))
    missing = [p for p, words in html_only if not _said(words, all_text)]
    extra = [p for p, words in text_only if not _said(words, all_html)]
    if not missing and not extra:
        return ""
    parts = []
    if missing:
        parts.append("only in the HTML: " + "; ".join(_quote(p) for p in missing[:2]))
    if extra:
        parts.append("only in the plain text: " + "; ".join(_quote(p) for p in extra[:2]))
    return (
        "The plain-text part and the HTML say different things (" + "; ".join(parts) + "). "
        "Edit the plain text, or empty it to have it made from the HTML."
    )


_sample_cache: dict[tuple[str, int], list[tuple[str, list[str]]]] = {}
_JINJA_TAG = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)


def _source_paragraphs(html: str) -> list[tuple[str, list[str]]]:
    """The paragraphs of an HTML template's content block as written, Jinja tags left out."""
    try:
        content = _blocks(html).get("content", html)
    except ValidationError:
        content = html
    return _html_paragraphs(_JINJA_TAG.sub(" ", content))


def sample_paragraphs(library: TemplateLibrary) -> list[tuple[str, str, list[str]]]:
    """(starter, paragraph, words) of the sample copy the starter library ships."""
    found = []
    for name in library.names():
        path = library.directory / f"{name}.html"
        key = (str(path), path.stat().st_mtime_ns)
        if key not in _sample_cache:
            source = path.read_text("utf-8")
            marked = any(SAMPLE_MARK in c for c in re.findall(r"{#(.*?)#}", source, re.S))
            spans = _SAMPLE_SPAN.findall(source) or [_blocks(source).get("content", source)]
            _sample_cache[key] = [
                paragraph
                for span in (spans if marked else [])
                for paragraph in _html_paragraphs(_JINJA_TAG.sub(" ", span))
                if len(paragraph[1]) >= 12
            ]
        found += [(name, text, words) for text, words in _sample_cache[key]]
    return found


def sample_copy(library: TemplateLibrary, html: str) -> str:
    """The first paragraph of a starter's sample copy that ``html`` still says, or ""."""
    words = [w for _, ws in _source_paragraphs(html) for w in ws]
    for starter, text, sample in sample_paragraphs(library):
        if _said(sample, words):
            return (
                f"it still holds the {starter} starter's sample copy, {_quote(text, 70)}: "
                "write your own before it goes to candidates"
            )
    return ""


def named_html(library: TemplateLibrary, name: str) -> str:
    """The HTML a template of that name sends now (the team's edit, else the file), or ""."""
    found = library.sources(name) if library.sources is not None else None
    if found is not None:
        return found[0]
    try:
        return library.file_sources(name)[0]
    except ValidationError:
        return ""


def review(
    library: TemplateLibrary,
    settings: MailSettings,
    source: Source,
    compiled: CompiledTemplate,
    mail: RenderedMail,
    candidate: Candidate,
) -> list[str]:
    """What an author should know before this goes out (never a reason to refuse a save):
    optional values printed without a guard (and empty for this candidate), the internal
    rejection reason shown, Python in the output, parts that disagree, sample copy."""
    notes: list[str] = []
    context = preview_context(settings, None, candidate)
    for field, part, is_text in (
        ("subject", source.subject, True),
        ("HTML", source.html, False),
        ("plain text", source.text, True),
    ):
        if not part.strip():
            continue
        try:
            tree = library.check(part, field, text=is_text)
        except ValidationError:
            continue
        for path, line in unguarded(tree):
            value = _value_at(context, path)
            who = (
                f"and is empty for {candidate.first_name or candidate.email}, whose mail "
                "shows nothing there"
                if not value
                else "and is empty for some candidates"
            )
            notes.append(
                f"{field} line {line}: {{{{ {path} }}}} is not inside "
                f"{{% if {path} %}}…{{% endif %}} {who}"
            )
        shown_at = shows_internal_reason(tree)
        if shown_at is not None:
            notes.append(
                f"{field} line {shown_at}: candidate.rejection_reason is an internal note; "
                "candidates should never read it"
            )
    notes += [f"For this candidate {leak}" for leak in leaks(mail)]
    drift = text_drift(library, compiled, context)
    if drift:
        notes.append(drift)
    copy = sample_copy(library, source.html)
    if copy:
        notes.append(f"This mail cannot be sent yet: {copy}.")
    return notes


def _value_at(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value
