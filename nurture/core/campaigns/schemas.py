"""What campaigns take in: a campaign definition (drip, broadcast, job alert) with its steps,
entry, sender, send window, entry filter and schedule; a broadcast; a job opening.

A step's template is compiled while the definition is checked, when the caller passes the
template library in the validation context (``{"library": ...}``), so a syntax error is
reported with the other problems, at ``steps[2].html``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)

from nurture.core import languages
from nurture.core import settings as core_settings
from nurture.core.campaigns.durations import parse_delay
from nurture.core.campaigns.timing import CATEGORIES, DAYS, Day, parse_schedule
from nurture.core.content import templates as template_service
from nurture.core.errors import ValidationError
from nurture.core.inputs import (
    Email,
    Id,
    Input,
    Matching,
    OptionalEmail,
    Text,
    fail_at,
    names,
    problem,
    raw,
)
from nurture.models import (
    AtsEventType,
    CampaignKind,
    EntryType,
    ExitRule,
    Reentry,
    Step,
    StepCondition,
    StepVariant,
    Topic,
)

_FORBID = ConfigDict(extra="forbid")
Loc = tuple[str | int, ...]


def _duration(value: str) -> str:
    try:
        parse_delay(value, "delay")
    except ValidationError as exc:
        raise problem("duration", exc.fields["delay"]) from None
    return value.strip().upper()


# An ISO-8601 duration in days, hours, minutes or seconds: P3D, PT12H, PT30S (no months).
Duration = Annotated[
    str,
    Field(max_length=40, json_schema_extra={"examples": ["P3D", "PT30S"]}),
    AfterValidator(_duration),
]


def _days(value: Any) -> Any:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(d, str) and d.lower() in DAYS for d in value)
    ):
        raise problem("days", f"choose at least one day: a list among {', '.join(DAYS)}")
    wanted = {d.lower() for d in value}
    return [d for d in DAYS if d in wanted]


# The same, or "" for none.
OptionalDuration = Annotated[
    str,
    Field(max_length=40),
    AfterValidator(lambda value: _duration(value) if value.strip() else ""),
]
_TIME = "a time as HH:MM, e.g. 09:00"


class SendWindow(Input):
    """When mail may go out, in the candidate's zone: days left out mean every day, a start
    left out 00:00, an end left out 24:00; an end before the start crosses midnight."""

    model_config = _FORBID

    days: Annotated[list[Day], BeforeValidator(_days), Field(min_length=1)] | None = None
    start: Annotated[str, Matching(r"([01]\d|2[0-3]):[0-5]\d", _TIME)] | None = None
    end: Annotated[str, Matching(r"([01]\d|2[0-3]):[0-5]\d|24:00", _TIME)] | None = None

    @classmethod
    def across(cls, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
        """The window is not empty."""
        start, end = data.get("start", "00:00"), data.get("end", "24:00")
        if isinstance(start, str) and start == end:
            return [(("end",), "the window must not be empty: end differs from start")]
        return []

    def stored(self) -> dict[str, Any]:
        """The window as campaigns keep it ({} for any time)."""
        return self.model_dump(exclude_none=True)


_LISTED = "must be a list of non-empty strings"


class EntryFilter(Input):
    """Who of those entering is let in (ATS rejections), and how long they wait first."""

    model_config = _FORBID

    rejection_reasons: (
        Annotated[list[Annotated[str, Text(200)]], BeforeValidator(names(_LISTED))] | None
    ) = None
    stages: Annotated[list[Annotated[str, Text(100)]], BeforeValidator(names(_LISTED))] | None = (
        None
    )
    delay: OptionalDuration | None = None

    def stored(self) -> dict[str, Any]:
        """The filter as campaigns keep it ({} lets everyone in at once)."""
        return {key: value for key, value in self.model_dump().items() if value}


def _tag(value: str) -> str:
    if not value.strip():
        raise problem("tag", "must be a tag name")
    return value.strip().lower()


Tag = Annotated[Annotated[str, Text(100)], AfterValidator(_tag)]


def _chosen(value: Any) -> Any:
    if value == "":  # a form's "Choose a segment…"
        raise problem("segment_id", "no segment chosen")
    return value


class Audience(Input):
    """Who a broadcast goes to: the members of a segment, or the candidates with a tag."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"minProperties": 1, "maxProperties": 1}
    )

    segment_id: Annotated[Id, BeforeValidator(_chosen)] | None = None
    tag: Tag | None = None

    @classmethod
    def across(cls, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
        """Exactly one way in."""
        ways = list(cls.model_fields)
        if sum(1 for k in ways if data.get(k) is not None) == 1:
            return []
        return [((), f"give one of {', '.join(ways[:-1])} or {ways[-1]}")]

    def entry(self) -> tuple[str, str]:
        """(entry type, entry value) as campaigns store them."""
        if self.segment_id is not None:
            return EntryType.SEGMENT, str(self.segment_id)
        return EntryType.TAG, str(self.tag)


_CONDITIONS = ("", *(c.value for c in StepCondition))
if TYPE_CHECKING:  # the literals are built from the enums, which a type checker cannot follow
    Condition = str
    Rejected = str
    Category = str
else:
    Condition = Literal[_CONDITIONS]
    Rejected = Literal[AtsEventType.REJECTED.value]
    Category = Literal[("", *CATEGORIES)]


class Entry(Audience):
    """How candidates enter a drip: a segment, a tag, or a rejection in the ATS."""

    ats_event: Rejected | None = None

    def entry(self) -> tuple[str, str]:
        """(entry type, entry value) as campaigns store them."""
        if self.ats_event is not None:
            return EntryType.ATS_EVENT, self.ats_event
        return super().entry()


class Sender(Input):
    """Who the mail is from; with ``use_recruiter`` the candidate's recruiter, when known."""

    name: Annotated[str, Text(200)] = ""
    email: OptionalEmail = ""
    use_recruiter: bool = True


# Starters that are a recruiter's personal note: their steps are personal mail by default.
PERSONAL_TEMPLATES = ("rejection_followup",)


def _plain_line(value: str) -> str:
    if "{{" in value or "{%" in value or "\n" in value:
        raise problem("preheader", "one line of plain text (no {{ }} or {% %})")
    return value.strip()


class VariantIn(Input):
    """One subject line an A/B test tries, with its own preview text (optional)."""

    model_config = _FORBID

    subject: Annotated[Annotated[str, Text(2000)], AfterValidator(lambda v: v.strip())]
    preheader: Annotated[Annotated[str, Text(300)], AfterValidator(_plain_line)] = ""

    @classmethod
    def across(cls, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
        """A variant has a subject."""
        subject = data.get("subject")
        if not isinstance(subject, str) or not subject.strip():
            return [(("subject",), "each variant needs a subject line")]
        return []


class ABTestIn(Input):
    """A/B subjects: 2 to 4 variants tried on ``sample_percent`` of the step's mails; the rest
    get the winner by unique human ``metric`` after ``decide_after`` or once each variant went
    to ``min_sample`` candidates, whichever comes first."""

    model_config = _FORBID

    variants: Annotated[list[VariantIn], Field(min_length=2, max_length=4)]
    sample_percent: Annotated[int, Field(ge=2, le=100)] = 20
    metric: Literal["opens", "clicks"] = "opens"
    decide_after: OptionalDuration = "PT4H"
    min_sample: Annotated[int, Field(ge=0, le=1_000_000)] = 0

    @classmethod
    def across(cls, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
        """The test must end somehow: after a time, or a sample size."""
        after = data.get("decide_after", "PT4H")
        if (isinstance(after, str) and not after.strip()) and not data.get("min_sample"):
            return [(("decide_after",), "give a time to decide after, or a min_sample")]
        return []


class StepTranslationIn(Input):
    """A step in one more language: its subject (a step naming a template is translated in
    the template; only its subject here) or, for a step with its own HTML, that HTML too."""

    subject: Annotated[str, Text(2000)] = ""
    html: Annotated[str, Text(1_000_000)] = ""
    text: Annotated[str, Text(1_000_000)] = ""


class StepIn(Input):
    """One mail: its delay after the previous one, and a template name or its own HTML."""

    delay: Duration = "PT0S"
    subject: Annotated[str, Text(2000)] = ""
    template: Annotated[str, Text(200)] = ""
    html: Annotated[str, Text(1_000_000)] = ""
    text: Annotated[str, Text(1_000_000)] = ""
    condition: Condition | None = Field(
        default="", description="only send if the previous mail was (not) opened or clicked"
    )
    category: Category = Field(
        default="",
        description="personal mail (a recruiter's note) is never held by the frequency cap; "
        "left out: personal for the rejection follow-up starter, regular otherwise",
    )
    ab_test: ABTestIn | None = None
    require_strengths: bool = Field(
        default=False,
        description="hold the mail (not sent) while the candidate's strengths, the recruiter's "
        "personal note, is empty",
    )
    translations: dict[str, StepTranslationIn] = Field(
        default_factory=dict,
        description="by language code (de, pt-BR): the step in that language; the step's own "
        "parts are in the team's language (NURTURE_DEFAULT_LANGUAGE)",
        json_schema_extra={"examples": [{"de": {"subject": "Kurz nachgefragt"}}]},
    )

    @model_validator(mode="after")
    def _compiles(self, info: ValidationInfo) -> StepIn:
        if bool(self.template) == bool(self.html):
            raise fail_at("step", [(("template",), "give either a template name or html")])
        library = (info.context or {}).get("library")
        self.translations = self._clean_translations(library)
        if library is not None:
            # Checked as a saved template is: syntax on the author's line, variables that exist
            # (a subject naming {{ first_name }} is refused, never sent as ""), a trial render.
            problems = template_service.step_problems(
                library,
                template_service.trial_settings(core_settings.current()),
                template=self.template,
                subject=self.subject,
                html=self.html,
                text=self.text,
            )
            found: list[tuple[tuple[str | int, ...], str]] = [
                ((name,), msg) for name, msg in problems.items()
            ]
            for index, variant in enumerate(self.ab_test.variants if self.ab_test else []):
                for name, msg in template_service.step_problems(
                    library,
                    template_service.trial_settings(core_settings.current()),
                    template=self.template or "",
                    subject=variant.subject,
                    html=self.html,
                    text=self.text,
                ).items():
                    if name == "subject":
                        found.append((("ab_test", "variants", index, "subject"), msg))
            if found:
                raise fail_at("step", found)
        return self

    def _clean_translations(self, library: Any) -> dict[str, StepTranslationIn]:
        """The translations by code in its usual spelling, each checked as the step is."""
        default = languages.normalise(str(core_settings.current().get("DEFAULT_LANGUAGE") or ""))
        clean: dict[str, StepTranslationIn] = {}
        found: list[tuple[tuple[str | int, ...], str]] = []
        for key, part in self.translations.items():
            where: tuple[str | int, ...] = ("translations", key)
            try:
                code = languages.normalise(key)
            except languages.BadLanguage as exc:
                found.append((where, str(exc)))
                continue
            if not code or code == (default or "en"):
                found.append((where, f"{code or 'an empty code'} is the team's language: the "
                              "step's own subject and parts are written in it"))  # fmt: skip
                continue
            if code in clean:
                found.append((where, f"{code} is given twice"))
                continue
            if self.template and (part.html or part.text):
                found.append((
                    (*where, "html"),
                    "a step that names a template is translated in the template (admin, "
                    "Templates, Languages); give only its subject here",
                ))  # fmt: skip
                continue
            if self.html and not part.html:
                found.append(((*where, "html"), "write the HTML of the mail in this language"))
                continue
            if library is not None:
                problems = template_service.step_problems(
                    library,
                    template_service.trial_settings(core_settings.current()),
                    template=self.template,
                    subject=part.subject,
                    html=part.html,
                    text=part.text,
                )
                found.extend(((*where, name), msg) for name, msg in problems.items())
            clean[code] = part
        if found:
            raise fail_at("step", found)
        return clean

    def row(self, position: int) -> Step:
        """The step as a (new, unsaved) row at ``position``."""
        return Step(
            position=position,
            delay=self.delay,
            delay_seconds=int(parse_delay(self.delay).total_seconds()),
            subject=self.subject,
            template=self.template,
            html=self.html,
            text=self.text,
            condition=self.condition or "",
            # A recruiter's follow-up is personal mail (the frequency cap never holds it).
            category=self.category
            or ("personal" if self.template in PERSONAL_TEMPLATES else "regular"),
            require_strengths=self.require_strengths,
            **(self._ab_columns() if self.ab_test else {}),
            translations={
                code: part.model_dump(exclude_defaults=True)
                for code, part in self.translations.items()
            },
        )

    def _ab_columns(self) -> dict[str, Any]:
        test = self.ab_test
        assert test is not None
        return {
            "ab_sample_percent": test.sample_percent,
            "ab_metric": test.metric,
            "ab_decide_after_seconds": (
                int(parse_delay(test.decide_after).total_seconds()) if test.decide_after else 0
            ),
            "ab_min_sample": test.min_sample,
            "variants": [
                StepVariant(position=i, subject=v.subject, preheader=v.preheader)
                for i, v in enumerate(test.variants)
            ],
        }


def _exit_rules(value: Any) -> Any:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v in set(ExitRule) for v in value
    ):
        raise problem("exit_on", f"a list among {', '.join(ExitRule)}")
    return [rule for rule in ExitRule if rule in value]


def _group(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _no_segment(value: Any) -> Any:
    # A form's "No segment" comes as "" (or 0): the same as none.
    return None if isinstance(value, str | int) and value in ("", 0) else value


# Campaigns that share a group never run for the same candidate at once.
ExclusiveGroup = Annotated[
    str,
    Matching(
        r"|[a-z0-9][a-z0-9_-]{0,59}",
        "letters, digits, - and _ (at most 60), e.g. rejection-follow-up",
    ),
    BeforeValidator(_group),
]


def _name(value: str) -> str:
    if not value.strip():
        raise problem("name", "a campaign needs a name")
    return value.strip()


class CampaignIn(Input):
    """A campaign: a drip (by default), a broadcast or a job alert, stored as a draft."""

    name: Annotated[Annotated[str, Text(200)], AfterValidator(_name)]
    kind: CampaignKind = CampaignKind.DRIP
    description: Annotated[str, Text(2000)] = ""
    entry: Entry | None = None
    steps: Annotated[list[StepIn], Field(min_length=1)]
    sender: Sender | None = None
    send_window: SendWindow | None = None
    topic: Topic | None = None
    entry_filter: EntryFilter | None = None
    reentry: Reentry | None = None
    exit_on: (
        Annotated[
            list[ExitRule],
            BeforeValidator(_exit_rules),
            Field(
                description="What ends a candidate's drip besides unsubscribes, bounces and "
                "complaints, which always do."
            ),
        ]
        | None
    ) = None
    exclusive_group: ExclusiveGroup | None = Field(
        default=None,
        description="campaigns of one group never run for the same candidate at once "
        '(e.g. "rejection-follow-up": one rejection follow-up per rejection); "" for none',
    )
    entry_segment_id: Annotated[Id | None, BeforeValidator(_no_segment)] = Field(
        default=None,
        description="a segment whose members enter too (any drip, an ATS-triggered one "
        "included); null for none",
    )
    local_time: bool | None = None
    scheduled_at: (
        Annotated[
            Annotated[str, Text(64)],
            Field(
                description="A broadcast's time, ISO-8601 with an offset; with local_time, a "
                "wall-clock time read in each candidate's zone",
                examples=["2026-03-10T09:00:00Z"],
            ),
        ]
        | None
    ) = None
    _schedule: datetime | None = PrivateAttr(default=None)

    @classmethod
    def across(cls, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
        """What depends on other fields: the first step, a broadcast's shape, its schedule."""
        found: list[tuple[Loc, str]] = []
        if raw(data, "steps", 0, "condition"):
            found.append(
                (("steps", 0, "condition"), "the first step has no previous mail to look at")
            )
        broadcast = data.get("kind") == CampaignKind.BROADCAST
        if broadcast:
            found += _broadcast_shape(data)
        scheduled = data.get("scheduled_at") not in (None, "")
        if (scheduled or data.get("local_time") is True) and not broadcast:
            found.append((("scheduled_at",), "only a broadcast is sent at a scheduled time"))
        elif scheduled and isinstance(data["scheduled_at"], str):
            try:
                parse_schedule(data["scheduled_at"], data.get("local_time") is True)
            except ValidationError as exc:
                found.append((("scheduled_at",), exc.fields["scheduled_at"]))
        return found

    @model_validator(mode="after")
    def _when(self) -> CampaignIn:
        if self.scheduled_at:
            self._schedule = parse_schedule(self.scheduled_at, bool(self.local_time))
        return self

    def stored(self) -> dict[str, Any]:
        """The campaign's columns (defaults filled in), ready for ``Campaign(**...)``."""
        entry_type, entry_value = self.entry.entry() if self.entry else (EntryType.MANUAL, "")
        if self.kind == CampaignKind.BROADCAST:
            # Its audience is chosen by the broadcast pass when it sends, never by entry hooks.
            entry_type, entry_value = EntryType.MANUAL, f"{entry_type}:{entry_value}"
        sender = self.sender or Sender()
        clean: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "description": self.description.strip(),
            "entry_type": entry_type,
            "entry_value": entry_value,
            "sender_name": sender.name,
            "sender_email": sender.email,
            "sender_is_recruiter": sender.use_recruiter,
            "send_window": self.send_window.stored() if self.send_window else {},
            # A new rejection enrols again once the earlier drip has ended, unless told otherwise.
            "reentry": self.reentry or Reentry.AFTER_EXIT,
            "topic": self.topic or self.kind.default_topic,
            "entry_filter": self.entry_filter.stored() if self.entry_filter else {},
        }
        if self.exit_on is not None:
            clean["exit_on"] = list(self.exit_on)
        if self.exclusive_group is not None:
            clean["exclusive_group"] = self.exclusive_group
        if "entry_segment_id" in self.model_fields_set:
            clean["entry_segment_id"] = self.entry_segment_id
        if self.local_time is not None:
            clean["local_time"] = self.local_time
        if self._schedule is not None:
            clean["scheduled_at"] = self._schedule
        return clean

    def step_rows(self) -> list[Step]:
        """The steps as new rows, in order."""
        return [step.row(position) for position, step in enumerate(self.steps)]


def _broadcast_shape(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    found: list[tuple[Loc, str]] = []
    steps = data.get("steps")
    if isinstance(steps, list) and len(steps) > 1:
        found.append((("steps",), "a broadcast is one mail: give exactly one step"))
    entry = data.get("entry")
    if not isinstance(entry, Mapping) or not {"segment_id", "tag"} & set(entry):
        found.append((("entry",), "a broadcast goes to a segment_id or a tag"))
    return found


class BroadcastIn(Input):
    """One mail to a segment or a tag: now, at a time, or at a local hour in each zone."""

    model_config = _FORBID

    name: Annotated[str, Text(200)]
    audience: Audience
    template: Annotated[str, Text(200)] = ""
    html: Annotated[str, Text(1_000_000)] = ""
    text: Annotated[str, Text(1_000_000)] = ""
    subject: Annotated[str, Text(2000)] = ""
    scheduled_at: Annotated[str, Text(64)] | None = None
    local_time: bool | None = None
    topic: Topic | None = None
    sender: Sender | None = None
    send_window: SendWindow | None = None
    activate: bool = Field(default=True, description="false keeps it a draft")

    def campaign(self) -> dict[str, Any]:
        """The broadcast as a campaign definition (checked again as one)."""
        given = self.model_dump(exclude_unset=True, exclude={"activate"})
        step = {k: given.pop(k) for k in ("template", "html", "text", "subject") if k in given}
        entry = given.pop("audience")
        return {**given, "kind": CampaignKind.BROADCAST, "entry": entry, "steps": [{**step}]}


# --- job openings ------------------------------------------------------------------------------

MAX_SKILLS = 30


def _skills(value: Any) -> Any:
    if isinstance(value, str):  # a form's "python, sql"
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise problem("skills", "must be a list of strings")
    skills = sorted({s.strip().lower() for s in value if s.strip()})
    if not skills:
        raise problem("skills", "give at least one skill: candidates are matched on them")
    if len(skills) > MAX_SKILLS:
        raise problem("skills", f"give at most {MAX_SKILLS} skills")
    if any(len(s) > 100 for s in skills):
        raise problem("skills", "each skill must be at most 100 characters")
    return skills


def _url(value: str) -> str:
    url = value.strip()
    parts = urlsplit(url)
    if not url:
        raise problem("url", "a link to the job description is required")
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in url:
        raise problem("url", "must be an http:// or https:// address")
    return url


def _title(value: str) -> str:
    if not value.strip():
        raise problem("title", "a job opening needs a title")
    return value.strip()


class OpeningIn(Input):
    """A role that opened: candidates are matched on its skills, role family and place."""

    title: Annotated[Annotated[str, Text(200)], AfterValidator(_title)]
    role_family: Annotated[
        Annotated[str, Text(100)], AfterValidator(lambda v: v.strip().lower())
    ] = ""
    skills: Annotated[
        list[str], BeforeValidator(_skills), Field(min_length=1, max_length=MAX_SKILLS)
    ]
    location: Annotated[Annotated[str, Text(200)], AfterValidator(str.strip)] = ""
    remote: bool = False
    url: Annotated[
        Annotated[str, Text(2000)], AfterValidator(_url), Field(json_schema_extra={"format": "uri"})
    ]
    summary: Annotated[Annotated[str, Text(5000)], AfterValidator(str.strip)] = ""

    @classmethod
    def across(cls, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
        """A place to match on, unless anyone may work from anywhere."""
        location = data.get("location")
        if data.get("remote", False) is False and not (
            isinstance(location, str) and location.strip()
        ):
            return [(("location",), "give a location, or mark the job as remote")]
        return []


class MatchIn(Input):
    """A candidate to add to an opening's review list, by address."""

    email: Email
