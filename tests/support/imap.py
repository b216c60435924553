"""A throw-away Dovecot IMAP server for tests: own config, one user, a maildir, loopback only."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from nurture.dev.processes import ServerProcess, ServerStartError, free_port, tail

__all__ = ["DovecotServer", "available"]

DOVECOT = "dovecot"
# Dovecot will not give mail access to uid 0; as root, mail is served as the package's own
# unprivileged account (Debian's dovecot-core creates it).
_ROOT_MAIL_USER = "dovecot"
_names = itertools.count()

_CONFIG = """\
# Written by tests/support/imap.py for one test run; no system configuration is read.
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
instance_name = nurture-test-{port}
log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{base}/mail/%u
first_valid_uid = {uid}
last_valid_uid = 0
default_internal_user = {internal}
default_login_user = {login}
{internal_group}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def binary() -> str | None:
    """The dovecot executable (Debian keeps it in /usr/sbin), or None."""
    return shutil.which(DOVECOT) or shutil.which(DOVECOT, path="/usr/sbin:/usr/local/sbin")


def available() -> bool:
    """Whether Dovecot is installed (``apt-get install dovecot-imapd``)."""
    return binary() is not None and os.path.exists("/usr/lib/dovecot/imap")


class DovecotServer:
    """A Dovecot instance with one user whose INBOX is a maildir the test can drop mail into."""

    def __init__(self, user: str = "inbox", password: str = "s3cret pass") -> None:
        """Prepare (but do not start) a server for ``user``."""
        self.user = user
        self.password = password
        self.port = 0
        self.directory: Path | None = None
        self._server: ServerProcess | None = None
        if os.geteuid() == 0:
            account = pwd.getpwnam(_ROOT_MAIL_USER)
            self._uid, self._gid = account.pw_uid, account.pw_gid
            self._internal = self._login = _ROOT_MAIL_USER
        else:
            self._uid, self._gid = os.getuid(), os.getgid()
            self._internal = self._login = pwd.getpwuid(self._uid).pw_name

    @property
    def url(self) -> str:
        """``imap://user:pass@127.0.0.1:port/INBOX``, as NURTURE_*_IMAP_URL takes it."""
        return (
            f"imap://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@127.0.0.1:{self.port}/INBOX"
        )

    @property
    def maildir(self) -> Path:
        """The user's INBOX maildir."""
        assert self.directory is not None, "DovecotServer is not started"
        return self.directory / "mail" / self.user

    def start(self) -> DovecotServer:
        """Write the config, start ``dovecot -F`` and wait until it greets on its port."""
        executable = binary()
        if executable is None:
            raise RuntimeError("dovecot is not installed (apt-get install dovecot-imapd)")
        self.directory = Path(tempfile.mkdtemp(prefix="nurture-imap-"))
        base = self.directory
        # The mail processes run as an unprivileged user that must reach the maildir.
        base.chmod(0o755)
        for sub in ("run", "state"):
            (base / sub).mkdir()
        for path in (base / "mail", *(self.maildir / s for s in ("", "cur", "new", "tmp"))):
            path.mkdir(parents=True, exist_ok=True)
            self._own(path)
        home = self.maildir
        (base / "passwd").write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{self._uid}:{self._gid}::{home}::\n"
        )
        self.port = free_port()
        group = ""
        if os.geteuid() != 0:
            group = f"default_internal_group = {_group_name(self._gid)}"
        config = base / "dovecot.conf"
        config.write_text(
            _CONFIG.format(
                base=base,
                port=self.port,
                uid=self._uid,
                internal=self._internal,
                login=self._login,
                internal_group=group,
            )
        )
        server = ServerProcess(
            [executable, "-F", "-c", str(config)],
            self.port,
            log=base / "stderr.log",
            name="dovecot",
            ready=self._greets,
            timeout=20.0,
        )
        try:
            self._server = server.start()
        except ServerStartError as exc:
            raise ServerStartError(f"{exc}\n{tail(base / 'dovecot.log')}") from None
        finally:
            if self._server is None:
                self.stop()
        return self

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self._uid, self._gid)

    def _greets(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(200).startswith(b"* OK")
        except OSError:
            return False

    def deliver(self, raw: bytes) -> Path:
        """Drop a message into the user's INBOX (maildir ``new/``), as a delivery agent does."""
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(_names)}.nurture-test"
        staging = self.maildir / "tmp" / name
        staging.write_bytes(raw.replace(b"\r\n", b"\n"))
        self._own(staging)
        target = self.maildir / "new" / name
        staging.rename(target)
        return target

    def clear(self) -> None:
        """Remove every message from the INBOX (Dovecot notices at the next SELECT)."""
        for sub in ("cur", "new"):
            for path in (self.maildir / sub).iterdir():
                path.unlink()

    def stop(self) -> None:
        """End the server and remove its directory; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name
