"""Inputs declared once: the base of every input model, the field types they share, and the
way a pydantic error becomes the error the API answers.

Every body the API takes, every CSV row after its columns are mapped and every campaign the
admin builds is a pydantic model (in the domain it belongs to: ``audience.schemas``,
``campaigns.schemas``, ``compliance.schemas``). The model checks the input, names each bad
field by its path (``steps[1].delay``, ``rules.all[2].op``, ``consent.at``) with what is wrong
with it, and is the schema the OpenAPI document shows, so the document cannot drift from what
is accepted.

JSON bodies are read with ``parse_json`` in strict mode (a number is not a string, ``"true"``
is not a boolean), exactly as the document says; forms and CSV cells, where everything is
text, go through ``parse`` in the lax mode.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from annotated_types import GroupedMetadata
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from nurture.core import languages
from nurture.core.addresses import normalise_email
from nurture.core.errors import ValidationError
from nurture.models.base import MAX_ID  # ids are INTEGER columns: at most 2**31-1

M = TypeVar("M", bound=BaseModel)

# The largest id a row can have.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

# PostgreSQL cannot store NUL in text; refused here, and the schema says so.
_NO_NUL = "^[^\\u0000]*$"
INVALID = "some fields are not valid"


class NotAnObject(ValidationError):
    """The body is not a JSON object at all (a 400, not a 422)."""


class Input(BaseModel):
    """Base of the input models: unknown keys are ignored unless a model forbids them."""

    model_config = ConfigDict(extra="ignore", validate_default=False)

    @classmethod
    def across(cls, data: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
        """Rules between fields, as (path, problem); run on the raw input, even when some
        fields are wrong, so that every problem is reported at once."""
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        extra = cls.across(data) if isinstance(data, Mapping) else []
        try:
            model = handler(data)
        except pydantic.ValidationError as exc:
            if not extra:
                raise
            raise _merged(cls.__name__, exc, extra) from None
        if extra:
            raise _merged(cls.__name__, None, extra)
        return model


def problem(kind: str, message: str) -> PydanticCustomError:
    """An error a validator raises: ``message`` is what the caller reads, as it is."""
    return PydanticCustomError(kind, message)


def fail_at(title: str, found: list[tuple[tuple[str | int, ...], str]]) -> pydantic.ValidationError:
    """A validation error naming paths below the field or model being validated."""
    return pydantic.ValidationError.from_exception_data(
        title,
        [InitErrorDetails(type=problem("invalid", msg), loc=loc, input=None) for loc, msg in found],
    )


def _merged(
    title: str, exc: pydantic.ValidationError | None, extra: list[tuple[tuple[str | int, ...], str]]
) -> pydantic.ValidationError:
    found = [(tuple(e["loc"]), message_of(e)) for e in (exc.errors() if exc else [])]
    known = {loc for loc, _ in found}
    return fail_at(title, [*found, *((loc, msg) for loc, msg in extra if loc not in known)])


# --- what the caller reads ---------------------------------------------------------------------

_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "string_too_long": "must be at most {max_length} characters",
    "string_too_short": "must not be empty",
    "string_pattern_mismatch": "must not contain NUL characters",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "too_short": "give at least {min_length}",
    "too_long": "give at most {max_length}",
    "extra_forbidden": "is not a field here",
    "json_invalid": "is not valid JSON",
}


def message_of(error: Mapping[str, Any]) -> str:
    """One pydantic error in the words nurture answers with: "must be at most 100 characters"."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("enum", "literal_error"):
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}"
    if kind == "value_error":
        return str(ctx.get("error") or error["msg"])
    if kind in _MESSAGES:
        return _MESSAGES[kind].format(**ctx)
    return str(error["msg"])


def path_of(loc: tuple[str | int, ...], prefix: str = "") -> str:
    """``("steps", 1, "delay")`` → ``steps[1].delay``, the way the API names a field."""
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def fields_of(exc: pydantic.ValidationError, prefix: str = "") -> dict[str, str]:
    """Each bad field's path and what is wrong with it (the first problem of each)."""
    fields: dict[str, str] = {}
    for error in exc.errors():
        fields.setdefault(path_of(tuple(error["loc"]), prefix) or "body", message_of(error))
    return fields


def parse(
    model: type[M],
    data: Any,
    *,
    context: dict[str, Any] | None = None,
    message: str = INVALID,
    prefix: str = "",
) -> M:
    """``data`` (a form's or a CSV row's values) as ``model``, or ValidationError naming fields."""
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as exc:
        raise ValidationError(message, fields_of(exc, prefix)) from None


def parse_json(
    model: type[M],
    raw: bytes | str,
    *,
    context: dict[str, Any] | None = None,
    message: str = INVALID,
) -> M:
    """A JSON body as ``model``, as strictly as its schema says; NotAnObject when it is not one."""
    try:
        return model.model_validate_json(raw or b"null", strict=True, context=context)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        if any(not e["loc"] or e["type"] == "json_invalid" for e in errors):
            raise NotAnObject("the body must be a JSON object", {}) from None
        raise ValidationError(message, fields_of(exc)) from None


# --- the field types the domains share ---------------------------------------------------------


def Text(max_length: int, min_length: int = 0) -> Any:  # noqa: N802 - reads as a type's part
    """``Annotated[str, Text(200)]``: at most ``max_length`` characters, and no NUL."""
    if min_length:
        return Field(max_length=max_length, min_length=min_length, pattern=_NO_NUL)
    return Field(max_length=max_length, pattern=_NO_NUL)


def _stripped(value: str) -> str:
    return value.strip()


def _email(value: str) -> str:
    try:
        return normalise_email(value, "email")
    except ValidationError as exc:
        raise problem("email", exc.fields["email"]) from None


def _blank_or_email(value: str) -> str:
    return _email(value) if value.strip() else ""


def _zone(value: str) -> str:
    name = value.strip()
    if name:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise problem(
                "zone", f"{name!r} is not an IANA time zone (e.g. Europe/Paris)"
            ) from None
    return name


# An address, stored in one form (the domain lower-cased).
Email = Annotated[
    str, Field(max_length=320, json_schema_extra={"format": "email"}), AfterValidator(_email)
]
# An address, or "" for none.
OptionalEmail = Annotated[str, Field(max_length=320), AfterValidator(_blank_or_email)]
# An IANA time-zone name such as Europe/Lisbon ("" for none).
Zone = Annotated[
    str,
    Field(max_length=64, json_schema_extra={"examples": ["Europe/Lisbon"]}),
    AfterValidator(_zone),
]
Stripped = AfterValidator(_stripped)


def _language(value: str) -> str:
    try:
        return languages.normalise(value)
    except languages.BadLanguage as exc:
        raise problem("language", str(exc)) from None


# A BCP 47 language code ("de", "pt-BR"), stored in its usual spelling; "" for none.
Language = Annotated[
    str,
    Field(
        max_length=languages.MAX_LENGTH,
        json_schema_extra={"examples": ["de", "pt-BR"]},
    ),
    AfterValidator(_language),
]


class Matching(GroupedMetadata):
    """``Annotated[str, Matching(pattern, message)]``: a string that must match ``pattern``
    (shown in the schema), else ``message``."""

    def __init__(self, pattern: str, message: str, max_length: int = 100) -> None:
        self.pattern, self.message, self.max_length = pattern, message, max_length
        self._compiled = re.compile(pattern)

    def _check(self, value: str) -> str:
        if not self._compiled.fullmatch(value):
            raise problem("pattern", self.message)
        return value

    def __iter__(self) -> Iterator[Any]:
        yield Field(max_length=self.max_length, json_schema_extra={"pattern": self.pattern})
        yield AfterValidator(self._check)


def names(message: str, *, lower: bool = True) -> Callable[[Any], Any]:
    """A before-validator: a list of non-empty strings, else ``message`` for the whole field."""

    def check(value: Any) -> Any:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise problem("names", message)
        return sorted({v.strip().lower() if lower else v.strip() for v in value})

    return check


def raw(data: Any, *path: str | int) -> Any:
    """The value at ``path`` in raw input, or None where the input has another shape."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(data, list) or not -len(data) <= key < len(data):
                return None
        elif not isinstance(data, Mapping):
            return None
        data = data[key] if isinstance(key, int) else data.get(key)
    return data
