"""Structured logs: JSON lines with ids from web, worker and scheduler, and never a candidate.

The drip end to end with every nurture process as an operator runs it: gunicorn serving
``wsgi:app`` with deploy/gunicorn.conf.py (access log on), ``python worker.py`` and
``nurture scheduler --once`` for each pass; the test talks to them over HTTP only.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nurture.dev.embedded import free_port
from nurture.extensions import db
from nurture.models import Message, MessageState
from nurture.observability import logs
from tests.conftest import ATS_SECRET, api_token, running_app
from tests.e2e.test_drip import DRIP
from tests.web.ops.conftest import BIN, Process, process_env, worker

# Names and addresses no log line may ever hold; unusual enough that a hit is a real leak.
PEOPLE = {
    "ottilie": {
        "email": "Ottilie.Vandersloot@Example.org",
        "first_name": "Ottilie",
        "last_name": "Vandersloot",
        "role": "Staff Engineer",
        "recruiter_name": "Marguerite Oyelaran",
        "recruiter_email": "marguerite.oyelaran@acme.example.com",
    },
    "bartholomew": {
        "email": "bquenby+jobs@example.net",
        "first_name": "Bartholomew",
        "last_name": "Quenby",
    },
    "zhenyu": {
        "email": "zhenyu.lanfranchi@example.com",
        "first_name": "Zhenyù",
        "last_name": "Lanfranchi",
    },
}


def forbidden_strings() -> list[str]:
    """Every form in which a candidate's address or name could reach a log."""
    found = []
    for person in PEOPLE.values():
        for key in ("email", "recruiter_email"):
            if key in person:
                address = person[key]
                found += [address, address.lower(), urllib.parse.quote(address.lower())]
                found.append(address.split("@")[0].lower())
        for key in ("first_name", "last_name", "recruiter_name"):
            if key in person:
                found += person[key].split()
    return found


class Web:
    """gunicorn as the systemd unit starts it, spoken to over HTTP."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        env = env | {"NURTURE_PORT": str(self.port), "NURTURE_WEB_WORKERS": "1"}
        command = [str(BIN / "gunicorn"), "--config", "deploy/gunicorn.conf.py", "wsgi:app"]
        self.process = Process(command, env | {"NURTURE_ACCESS_LOG": "1"}, log)
        self.process.wait_for(lambda: self._answers("/healthz"), "gunicorn to serve")

    def _answers(self, path: str) -> bool:
        try:
            return self.request("GET", path)[0] == 200
        except OSError:
            return False

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str):
        """(status, headers, body) of one request; redirects are not followed."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method=method, headers=headers
        )
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=15) as answer:
                return answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def json(self, method: str, path: str, payload: dict, **headers: str):
        body = json.dumps(payload).encode()
        status, _, data = self.request(
            method, path, body, **({"Content-Type": "application/json"} | headers)
        )
        return status, json.loads(data or b"{}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


def signed(payload: dict) -> tuple[bytes, str]:
    body = json.dumps(payload).encode()
    return body, "sha256=" + hmac.new(ATS_SECRET.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def processes(sqlite_url, clock, redis_url, smtp, tmp_path: Path):
    settings = {
        "REDIS_URL": redis_url,
        "SMTP_URL": smtp.url,
        "SENDER_EMAIL": "talent@acme.example.com",
        "COMPANY_NAME": "Acme",
        "POSTAL_ADDRESS": "Acme Inc, 1 Main St, Springfield",
    }
    with running_app(sqlite_url, clock, **settings) as app:
        env = process_env(app, clock, tmp_path)
        del env["NURTURE_LOG_FORMAT"]  # the default: JSON, since no process has a terminal
        web = Web(env, tmp_path / "web.log")
        # DEBUG on the worker: the per-mail lines (and every library's chatter) are checked too.
        sender = worker(env | {"NURTURE_LOG_LEVEL": "DEBUG"}, tmp_path / "worker.log")
        try:
            yield app, env, web, sender
        finally:
            sender.stop()
            web.process.stop()


def test_no_log_line_of_any_process_names_a_candidate(processes, clock, smtp, tmp_path) -> None:
    app, env, web, sender = processes
    passes: list[Process] = []

    def drain() -> None:
        """One scheduler pass (a process), then wait for the worker to settle every mail."""
        scheduler = Process(
            [str(BIN / "nurture"), "scheduler", "--once"], env, tmp_path / f"s{len(passes)}.log"
        )
        passes.append(scheduler)
        assert scheduler.process.wait(timeout=60) == 0, scheduler.output

        def settled() -> bool:
            pending = db.session.scalar(
                select(func.count()).where(
                    Message.state.in_([MessageState.QUEUED, MessageState.SENDING])
                )
            )
            db.session.remove()
            return pending == 0

        sender.wait_for(settled, "the worker to settle the queue")

    token = {"Authorization": f"Bearer {api_token(app, 'editor')}"}
    status, created = web.json("POST", "/api/v1/campaigns", DRIP, **token)
    assert status == 201, created
    campaign_id = created["id"]
    assert web.json("POST", f"/api/v1/campaigns/{campaign_id}/activate", {}, **token)[0] == 200
    for person in PEOPLE.values():
        body, signature = signed({"type": "candidate.rejected", "candidate": person})
        status, _, _ = web.request(
            "POST", "/api/v1/ats/events", body,
            **{"Content-Type": "application/json", "X-Nurture-Signature": signature},
        )  # fmt: skip
        assert status == 200

    clock.advance(timedelta(hours=1))
    drain()
    mails = {
        m.rcpt_tos[0]: message_from_bytes(m.data, policy=policy.default) for m in smtp.wait_for(3)
    }
    assert len(mails) == 3
    # She opens and clicks (a search for her in the admin too); he unsubscribes; one is hired.
    clock.advance(timedelta(minutes=7))
    ottilie = mails["ottilie.vandersloot@example.org"].get_body(("html",)).get_content()
    links = [
        url.replace("https://nurture.test", "")
        for url in re.findall(r'(?:href|src)="([^"]+)"', ottilie)
    ]
    opened = next(url for url in links if "/o/" in url)
    clicked = next(url for url in links if "/c/" in url)
    phone = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile"}
    assert web.request("GET", opened, **phone)[0] == 200
    assert web.request("GET", clicked, **phone)[0] == 302
    web.request("GET", "/admin/candidates?q=Ottilie.Vandersloot%40Example.org")
    unsubscribe = re.search(
        r"<https://nurture\.test(/u/[^>]+)>", mails["bquenby+jobs@example.net"]["List-Unsubscribe"]
    ).group(1)
    one_click = web.request(
        "POST", unsubscribe, b"List-Unsubscribe=One-Click",
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert one_click[0] == 200
    body, signature = signed(
        {"type": "candidate.hired", "candidate": {"email": PEOPLE["zhenyu"]["email"]}}
    )
    web.request(
        "POST", "/api/v1/ats/events", body,
        **{"Content-Type": "application/json", "X-Nurture-Signature": signature},
    )  # fmt: skip
    smtp.clear()
    clock.advance(timedelta(days=3))
    drain()
    assert [m.rcpt_tos[0] for m in smtp.wait_for(1)] == ["ottilie.vandersloot@example.org"]

    sender.stop()
    web.process.stop()
    logs_by_process = {
        "web": web.process.output,
        "worker": sender.output,
        "scheduler": "".join(p.output for p in passes),
    }
    never = forbidden_strings()
    lines: dict[str, list[dict]] = {}
    for name, text in logs_by_process.items():
        lines[name] = []
        for raw in text.splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)  # every line is one JSON object
            assert isinstance(line, dict), raw
            assert {"timestamp", "level", "message", "process", "pid"} <= line.keys(), raw
            lowered = raw.lower()
            leaked = [word for word in never if word.lower() in lowered]
            assert not leaked, f"{name} logged {leaked}: {raw}"
            # The links' tokens open a candidate's preference page: never in a log either.
            assert "/u/" not in raw or "/u/…" in raw, raw
            for link in (opened, clicked, unsubscribe):
                assert link.split("/")[2].split(".")[0] not in raw, raw
            lines[name].append(line)
        assert lines[name], f"{name} wrote no log line"
    assert {line["process"] for line in lines["web"]} == {"web"}
    assert {line["process"] for line in lines["worker"]} == {"worker"}
    assert {line["process"] for line in lines["scheduler"]} == {"scheduler"}

    # The lines say which mail, campaign and candidate they are about.
    ats = [line for line in lines["web"] if line["message"] == "ats event"]
    assert len(ats) == 4 and all(line["candidate_id"] for line in ats)
    assert [line["campaign_ids"] for line in ats[:3]] == [[campaign_id]] * 3
    requests = [line for line in lines["web"] if line["message"] == "request"]
    assert {"/o/…", "/c/…", "/u/…", "/admin/candidates"} <= {line["path"] for line in requests}
    sent = [line for line in lines["worker"] if line["message"] == "mail sent"]
    assert len(sent) == 4
    assert all(line["message_id"] and line["candidate_id"] for line in sent)
    assert {line["campaign_id"] for line in sent} == {campaign_id}
    batches = [line for line in lines["worker"] if line["message"] == "send batch done"]
    assert sum(line["sent"] for line in batches) == 4
    assert all(line["campaign_ids"] == [campaign_id] for line in batches)
    passes_logged = [line for line in lines["scheduler"] if line["message"] == "scheduler pass"]
    assert sum(line["new_messages"] for line in passes_logged) == 4


def _record(message: str, *args, exc: BaseException | None = None, **extra) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("worker"))
    logger = logging.getLogger("tests.web.ops.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error(message, *args, extra=extra, exc_info=(type(exc), exc, None) if exc else None)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_an_address_is_scrubbed_wherever_code_puts_it() -> None:
    line = json.loads(
        _record(
            "could not mail %s",
            "Ottilie.Vandersloot@Example.org",
            exc=ValueError("550 <bquenby+jobs@example.net> unknown"),
            detail={"to": ["zhenyu.lanfranchi@example.com"], "search": "?q=ottilie%40example.org"},
        )
    )
    text = json.dumps(line)
    assert "@" not in text and "%40" not in text
    assert line["message"] == "could not mail [address]"
    assert line["detail"]["to"] == ["[address]"]
    assert "ottilie" not in line["detail"]["search"]
    assert "550 <[address]> unknown" in line["exception"]


def test_console_output_is_for_people_and_json_for_machines(monkeypatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NURTURE_LOG_FORMAT", raising=False)
    assert logs.chosen_format(Terminal()) == "console"
    assert logs.chosen_format(io.StringIO()) == "json"
    monkeypatch.setenv("NURTURE_LOG_FORMAT", "json")
    assert logs.chosen_format(Terminal()) == "json"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("web", "console"))
    record = logging.LogRecord("nurture.x", logging.INFO, __file__, 1, "mail sent", (), None)
    record.message_id = 7
    handler.emit(record)
    text = stream.getvalue()
    assert "mail sent" in text and "message_id=7" in text
    with pytest.raises(ValueError):
        text.strip() and json.loads(text)
    with pytest.raises(ValueError, match="NURTURE_LOG_FORMAT"):
        logs.formatter("web", "xml")


assert sys.version_info >= (3, 11)
