"""Templates edited in the admin: listing, validation on save, previews and test sends.

The starter files in ``templates/emails`` are read-only; the team's own templates are
``EmailTemplate`` rows that extend the same layout. Both are compiled by the one
``TemplateLibrary``, which reaches the rows through ``sources_from(session)``.
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
from sqlalchemy import func, or_, select
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
    User,
)

# Every variable a template may use, keyed exactly as build_context() produces them
# (tests/services/test_templates.py keeps the two equal): path -> (meaning, note).
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


def sources_from(session: Session | scoped_session) -> Sources:
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
    starters = []
    for name in library.names():
        html, _ = library.file_sources(name)
        starters.append(
            TemplateInfo(
                name=name,
                kind="starter",
                subject=block_subject(html),
                description=purposes.get(name, ""),
                used_by=using.get(name, []),
            )
        )
    rows = session.execute(
        select(EmailTemplate, User.name, User.email)
        .outerjoin(User, User.id == EmailTemplate.updated_by_id)
        .order_by(EmailTemplate.name)
    ).all()
    team = [
        TemplateInfo(
            name=template.name,
            kind="team",
            subject=template.subject or block_subject(template.html),
            description=template.description,
            used_by=using.get(template.name, []),
            id=template.id,
            updated_at=template.updated_at,
            updated_by=user_name or user_email or "",
        )
        for template, user_name, user_email in rows
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
    library: TemplateLibrary, settings: MailSettings, source: Source
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
    compiled = library.compile(source.html, source.text or None, subject=source.subject)
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
        problem = unknown_variables(trees[field])
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
    context = preview_context(settings, None, sample_candidate())
    try:
        compiled.render(context)
    except RenderError as exc:
        # A subject from the HTML's {% block subject %} is the HTML's to fix.
        field = "html" if exc.field == "subject" and not source.subject else exc.field
        raise ValidationError("the template cannot be rendered", {field: exc.problem}) from None


def _name_problem(
    session: Session, library: TemplateLibrary, name: str, template: EmailTemplate | None
) -> str | None:
    """What is wrong with ``name`` for this template, or None."""
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
) -> EmailTemplate:
    """Validate every field, then create or update a template; nothing is written on error."""
    name = str(data.get("name") or "").strip()
    description = " ".join(str(data.get("description") or "").split())
    source = clean_source(data.get("html"), data.get("text"), data.get("subject"))
    errors: dict[str, str] = {}
    problem = _name_problem(session, library, name, template)
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
    return template


def delete_template(session: Session, template: EmailTemplate) -> None:
    """Delete a template no campaign uses; Conflict names the campaigns that do."""
    users = campaigns_using(session).get(template.name)
    if users:
        raise Conflict(f"{template.name} is used by {', '.join(users)}; change their steps first")
    session.delete(template)
    session.flush()


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
    """A team copy of a starter, ready to edit (``<name>_copy``)."""
    source = starter_source(library, name)
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
    settings: MailSettings, tokens: Tokens | None, candidate: Candidate
) -> dict[str, Any]:
    """The real context for ``candidate`` (links signed by ``tokens``; inert without them)."""
    if tokens is None:
        tokens = Tokens(secrets.token_hex(16), settings.base_url)  # links that verify nowhere
    candidate_id = candidate.id or 0
    return build_context(
        candidate,
        preview_campaign(),
        settings,
        unsubscribe_url=tokens.unsubscribe_url(candidate_id, None),
        preferences_url=tokens.preferences_url(candidate_id, None),
        job=sample_job(settings),
        # Sample names: the referral mails name real people only when they are sent.
        referral={
            "url": tokens.referral_url(candidate_id, None, None),
            "opening": sample_job(settings)["title"],
            "referrer_name": "Ana Lima",
            "referred_name": "Ben",
            "consent_url": tokens.referral_consent_url(candidate_id),
        },
    )


def render_preview(
    compiled: CompiledTemplate, settings: MailSettings, tokens: Tokens, candidate: Candidate
) -> RenderedMail:
    """What ``candidate`` would receive; links are left as written (no tracking, no pixel)."""
    return compiled.render(preview_context(settings, tokens, candidate))


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
