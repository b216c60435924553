"""Server processes for ``nurture up`` and the tests: started, waited for and stopped by mirakuru.

mirakuru starts a command in its own process group, waits until it accepts TCP connections
(and, here, until a server-specific probe answers), and stops the whole group. On top of it
this module adds what every server of ours wants the same way: output to a log file whose
tail explains a failed start, and, on Linux, the child's death with its parent (so a killed
test run or ``nurture up`` leaves no server behind).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from mirakuru import TCPExecutor
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired

LOCALHOST = "127.0.0.1"

__all__ = ["LOCALHOST", "ServerProcess", "ServerStartError", "free_port", "tail"]


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries its log's last lines."""


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for an error message."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _dying_with_parent(command: Sequence[str]) -> list[str]:
    # util-linux's setpriv sets PR_SET_PDEATHSIG and execs the command: if our process dies,
    # even by SIGKILL, the server gets SIGTERM instead of living on as an orphan.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else list(command)


class ServerProcess(TCPExecutor):
    """A server on 127.0.0.1:``port``: ready once it accepts connections and ``ready()`` agrees."""

    def __init__(
        self,
        command: Sequence[str],
        port: int,
        *,
        log: Path,
        name: str,
        ready: Callable[[], bool] | None = None,
        timeout: float = 30.0,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Prepare (not start) ``command``, which must listen on ``port`` and write to ``log``."""
        self.name, self.log = name, log
        self._ready = ready
        self._log_file: IO[bytes] | None = None
        self._command_line = list(command)
        self._options: dict[str, Any] = {
            "timeout": timeout,
            "sleep": 0.05,
            "envvars": env,
            "cwd": str(cwd) if cwd else None,
            "stdin": subprocess.DEVNULL,
            "stderr": subprocess.STDOUT,
        }
        super().__init__(_dying_with_parent(command), host=LOCALHOST, port=port, **self._options)

    def after_start_check(self) -> bool:
        """Accepting connections is not enough for every server: ask its own probe too."""
        return super().after_start_check() and (self._ready is None or self._ready())

    def start(self) -> ServerProcess:
        """Start the server and wait until it is ready; ServerStartError with its log if not."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        # A fresh log per start, so a failure report shows this run's lines, not an older one's.
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in _release_log
        self._stdout = self._log_file
        try:
            super().start()
        except AlreadyRunning:
            self._release_log()
            raise ServerStartError(f"{self.name}: {LOCALHOST}:{self.port} is taken") from None
        except ProcessExitedWithError as exc:
            self._release_log()
            raise ServerStartError(
                f"{self.name} exited with status {exc.exit_code} during startup; "
                f"log tail ({self.log}):\n{tail(self.log)}"
            ) from None
        except TimeoutExpired:
            self._release_log()
            raise ServerStartError(
                f"{self.name} was not ready on {LOCALHOST}:{self.port} within "
                f"{self._timeout:g}s; log tail ({self.log}):\n{tail(self.log)}"
            ) from None
        return self

    def stop(self, *args: Any, **kwargs: Any) -> ServerProcess:
        """Stop the server's process group (SIGTERM, then SIGKILL); safe to call twice."""
        try:
            super().stop(*args, **kwargs)
        finally:
            self._release_log()
        return self

    def kill(self, wait: bool = True, sig: int | None = None) -> ServerProcess:
        """Kill the server's process group at once (a fault test's crash)."""
        try:
            super().kill(wait=wait, sig=sig)
        finally:
            self._release_log()
        return self

    def _release_log(self) -> None:
        log_file, self._log_file = self._log_file, None
        if log_file is not None:
            log_file.close()
