"""Structured logs for web, worker and scheduler: one JSON object a line, or a console view.

Every line, nurture's own and its libraries' (RQ, gunicorn, werkzeug, SQLAlchemy), goes through
one structlog chain on the root logger. Code logs with the standard library and names ids in
``extra`` (``log.info("mail skipped", extra={"message_id": 7, ...})``); the chain adds the
time, level, logger and process. The last step before rendering scrubs anything that looks like
an address and masks the tokens of candidates' links, so a slip elsewhere cannot put a
candidate's address (or a link that opens their preference page) into a log.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor

# Local part, "@" or its URL encoding, a dotted domain: wider than a valid address on purpose.
ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")
SCRUBBED = "[address]"
# /o/ /c/ /u/ /p/ /r/ /k/ carry signed tokens: each opens something of one candidate's.
PUBLIC_TOKEN = re.compile(r"(?<![\w/])/([ocupkr])/[^\s/?\"']+")
QUERY = re.compile(r"\?[^\s\"]*")
# Loggers whose messages are request lines: no query strings (searches hold names) or tokens.
REQUEST_LOGGERS = frozenset({"werkzeug", "gunicorn.access"})
FORMATS = ("json", "console")
_HANDLER_NAME = "nurture"


def scrub_text(text: str) -> str:
    """``text`` with every address-like string replaced."""
    return ADDRESS.sub(SCRUBBED, text) if "@" in text or "%40" in text else text


def mask_path(path: str) -> str:
    """A request path as logs may show it: no query string, the links' tokens masked."""
    return PUBLIC_TOKEN.sub(r"/\1/…", QUERY.sub("", path))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(item) for item in value]
    return value


def scrub(logger: Any, method: str, event_dict: EventDict) -> EventDict:
    """Processor: no address in any value of the line, whatever the code logged."""
    return {key: _scrub(value) for key, value in event_dict.items()}


def request_lines(logger: Any, method: str, event_dict: EventDict) -> EventDict:
    """Processor: access-log records become fields, with masked paths and no client address."""
    record = event_dict.get("_record")
    name = getattr(record, "name", "")
    if name not in REQUEST_LOGGERS:
        return event_dict
    atoms = getattr(record, "_nurture_atoms", None)
    if name == "gunicorn.access" and isinstance(atoms, dict):
        event_dict["event"] = "request"
        event_dict["method"] = atoms.get("m", "-")
        event_dict["path"] = mask_path(str(atoms.get("U", "")))
        event_dict["status"] = _int(atoms.get("s"))
        event_dict["duration_ms"] = round(_int(atoms.get("D")) / 1000, 2)
        event_dict["bytes"] = _int(atoms.get("B"))
        return event_dict
    # werkzeug: '127.0.0.1 - - [date] "GET /path?q=x HTTP/1.1" 200 -': keep the request.
    text = str(event_dict.get("event", ""))
    quoted = re.search(r'"([A-Z]+) (\S+) [^"]*" (\d{3})', text)
    if quoted:
        event_dict["event"] = "request"
        event_dict["method"], path, status = quoted.groups()
        event_dict["path"] = mask_path(path)
        event_dict["status"] = int(status)
    else:
        event_dict["event"] = mask_path(text)
    return event_dict


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class _KeepAtoms(logging.Filter):
    """gunicorn passes the access log's fields as the record's args; keep them for the chain."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            record._nurture_atoms = dict(record.args)  # type: ignore[attr-defined]
        return True


def _static(process: str) -> Processor:
    def add(logger: Any, method: str, event_dict: EventDict) -> EventDict:
        record = event_dict.get("_record")
        event_dict.setdefault("process", process)
        # The record's pid: a formatter made in gunicorn's master also formats for its workers.
        event_dict.setdefault("pid", record.process if record is not None else os.getpid())
        return event_dict

    return add


def _level(logger: Any, method: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    event_dict["level"] = record.levelname.lower() if record is not None else method
    return event_dict


_RECORD_KEYS = frozenset(logging.LogRecord("n", 0, "p", 0, "m", (), None).__dict__) | {"message"}


def _extras(logger: Any, method: str, event_dict: EventDict) -> EventDict:
    """What code passed in ``extra={...}``: the ids a line is about."""
    record = event_dict.get("_record")
    if record is not None:
        for key, value in record.__dict__.items():
            if key not in _RECORD_KEYS and not key.startswith("_"):
                event_dict.setdefault(key, value)
    return event_dict


def _logger_name(logger: Any, method: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    if record is not None:
        event_dict["logger"] = record.name
    return event_dict


def formatter(process: str, fmt: str = "json") -> logging.Formatter:
    """The formatter every handler of ``process`` (web, worker, scheduler…) uses."""
    if fmt not in FORMATS:
        raise ValueError(f"NURTURE_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _level,
        _logger_name,
        _extras,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _static(process),
        request_lines,
    ]
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(default=str, ensure_ascii=False)
        final: list[Processor] = [
            structlog.processors.EventRenamer("message"),
            _first_the_usual,
            renderer,
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False, pad_event_to=30)
        final = [renderer]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrub,
            *final,
        ],
    )


_FIRST = ("timestamp", "level", "process", "message", "logger", "pid")


def _first_the_usual(logger: Any, method: str, event_dict: EventDict) -> EventDict:
    """The fields every line has come first, so people can read the JSON too."""
    ordered = {key: event_dict.pop(key) for key in _FIRST if key in event_dict}
    ordered.update(event_dict)
    return ordered


def chosen_format(stream: TextIO, environ: MutableMapping[str, str] | None = None) -> str:
    """``NURTURE_LOG_FORMAT`` if set, else console on a terminal and JSON anywhere else."""
    environ = os.environ if environ is None else environ
    chosen = environ.get("NURTURE_LOG_FORMAT", "").strip().lower()
    if chosen:
        return chosen
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def configure(process: str, *, stream: TextIO | None = None, fmt: str | None = None) -> None:
    """Send every log record of this process through the structured chain (entry points call it).

    ``NURTURE_LOG_LEVEL`` (default INFO) sets the level. Safe to call twice: the previous
    handler is replaced, not doubled.
    """
    stream = stream or sys.stderr
    fmt = fmt or chosen_format(stream)
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter(process, fmt))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(os.environ.get("NURTURE_LOG_LEVEL", "INFO").strip().upper() or "INFO")
    # SQLAlchemy logs statements with their parameters (addresses, names) at INFO when echo is
    # on; nothing here turns echo on, and WARNING keeps a stray engine setting from doing it.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    # Alembic announces its plugins whenever Flask-Migrate loads it: not news to an operator.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    """An exception nothing caught ends the process as one structured line, not a raw dump."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("nurture").critical("uncaught exception", exc_info=(kind, value, tb))


def gunicorn_setup(error_log: logging.Logger, access_log: logging.Logger) -> None:
    """Give gunicorn's own loggers the same chain (called from deploy/gunicorn.conf.py)."""
    fmt = chosen_format(sys.stderr)
    for log in (error_log, access_log):
        for handler in log.handlers:
            handler.setFormatter(formatter("web", fmt))
    access_log.addFilter(_KeepAtoms())


def bind(**ids: Any) -> Callable[[], None]:
    """Name ids every line logged in this context carries (a job's id, say); returns the undo."""
    tokens = structlog.contextvars.bind_contextvars(**ids)
    return lambda: structlog.contextvars.reset_contextvars(**tokens)
