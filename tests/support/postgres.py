"""A throw-away PostgreSQL cluster for tests, listening on 127.0.0.1 only."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from nurture.dev.processes import ServerProcess, free_port

__all__ = ["PostgresCluster", "available", "find_bindir"]

_REQUIRED = ("initdb", "postgres", "pg_ctl")
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# PostgreSQL refuses to run as root; this is the account Debian/Ubuntu packages create.
_SERVER_USER = "postgres"


def _has_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in _REQUIRED)


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version))


def find_bindir() -> Path | None:
    """Return the directory holding initdb/postgres/pg_ctl, or None when not installed."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and _has_binaries(Path(out)):
            return Path(out)
    # Debian keeps server binaries off PATH; prefer the newest installed major version.
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _has_binaries(Path(candidate)):
            return Path(candidate)
    return None


def available() -> bool:
    """Whether the PostgreSQL server binaries can be found."""
    return find_bindir() is not None


class PostgresCluster:
    """A temporary PostgreSQL cluster (initdb + postgres) that is deleted on stop()."""

    available = staticmethod(available)

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        """Prepare (but do not create) a cluster."""
        self._startup_timeout = startup_timeout
        self._bindir: Path | None = None
        self._tmpdir: Path | None = None
        self._server: ServerProcess | None = None
        self._port: int | None = None
        self._as_root = os.geteuid() == 0

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None:
            raise RuntimeError("PostgresCluster is not started")
        return self._port

    @property
    def directory(self) -> Path:
        """The temporary directory holding the data directory, socket and log."""
        if self._tmpdir is None:
            raise RuntimeError("PostgresCluster is not started")
        return self._tmpdir

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `nurture` database."""
        return self.url_for("nurture")

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of `database` on this cluster."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        """Create and start the cluster, create database `nurture` and return its URL."""
        if self._server is not None:
            return self.url
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError(
                "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found via "
                "`pg_config --bindir` or in /usr/lib/postgresql/*/bin; install e.g. "
                "the postgresql-15 package."
            )
        self._bindir = bindir
        self._tmpdir = Path(tempfile.mkdtemp(prefix="nurture-pg-"))
        try:
            if self._as_root:
                self._chown_to_server_user(self._tmpdir)
            self._initdb()
            self._launch()
            self.create_database("nurture")
        except BaseException:
            self.stop()
            raise
        return self.url

    def _chown_to_server_user(self, path: Path) -> None:
        try:
            account = pwd.getpwnam(_SERVER_USER)
        except KeyError:
            raise RuntimeError(
                f"running as root, but there is no {_SERVER_USER!r} user to run PostgreSQL as"
            ) from None
        if shutil.which("runuser") is None:
            raise RuntimeError("running as root, but `runuser` is missing (util-linux)")
        os.chown(path, account.pw_uid, account.pw_gid)

    def _command(self, program: str, *args: str) -> list[str]:
        assert self._bindir is not None
        command = [str(self._bindir / program), *args]
        if self._as_root:
            return ["runuser", "-u", _SERVER_USER, "--", *command]
        return command

    @property
    def _datadir(self) -> Path:
        return self.directory / "data"

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        result = subprocess.run(
            self._command(program, *args),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} failed with status {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}".rstrip()
            )

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "--pgdata", str(self._datadir),
            "--username", "postgres",
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C",
            # Durability is pointless for a cluster deleted after the test run.
            "--no-sync",
        )  # fmt: skip

    def _launch(self) -> None:
        port = free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(self.directory),
            "max_connections": "100",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options: list[str] = []
        for key, value in settings.items():
            options += ["-c", f"{key}={value}"]
        self._port = port
        self._server = ServerProcess(
            self._command("postgres", "-D", str(self._datadir), *options),
            port,
            log=self.directory / "postgres.log",
            name="postgres",
            ready=self._accepts,
            timeout=self._startup_timeout,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        ).start()

    def _accepts(self) -> bool:
        # The port opens before recovery ends; only a session proves the server is ready.
        try:
            with psycopg.connect(self._conninfo("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def restart(self, down_for: float = 0.0) -> None:
        """What ``pg_ctl restart -m fast`` does, on the same port, down ``down_for`` seconds.

        A fast shutdown rolls back open transactions and drops every session. The postmaster
        stays our child (and dies with us), where ``pg_ctl restart`` would leave a daemon behind.
        """
        assert self._server is not None, "the cluster is not running"
        self._run("pg_ctl", "stop", "-D", str(self._datadir), "-m", "fast", "-w", timeout=60)
        self._server.stop()
        time.sleep(down_for)  # the outage's length, not a synchronisation
        self._server.start()

    def _conninfo(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def create_database(self, name: str) -> str:
        """Create a fresh database `name` and return its SQLAlchemy URL."""
        if not _DB_NAME.match(name):
            raise ValueError(f"invalid database name {name!r} (use [a-z_][a-z0-9_]*)")
        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def stop(self) -> None:
        """Stop the server and delete the cluster directory; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            try:
                self._run("pg_ctl", "stop", "-D", str(self._datadir), "-m", "immediate", timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass  # stopping the process group below is enough
            server.stop()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self._port = None

    def __enter__(self) -> PostgresCluster:
        """Start the cluster."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the cluster and delete its files."""
        self.stop()
