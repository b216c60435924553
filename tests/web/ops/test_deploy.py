"""deploy/: every command line of the systemd units and the Procfile starts and becomes ready.

The files are parsed, not copied: ExecStart, Environment, EnvironmentFile, WorkingDirectory
and RuntimeDirectory are read from each unit, the install paths (/opt/nurture, /etc/nurture,
/run/nurture) mapped into this checkout and a temporary directory, and the command run against
the test's PostgreSQL, Redis and SMTP server. Ready means: the web answers /readyz with 200, a
worker registers with RQ, the scheduler records a finished pass.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import Worker

from nurture.dev.embedded import free_port
from nurture.tasks.telemetry import LAST_PASS_KEY, PassRecord
from tests.conftest import TestConfig, make_app, require
from tests.web.ops.conftest import BIN, ROOT, Process

DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Unit:
    """What a unit file says about how to run its service."""

    name: str
    sections: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Unit:
        unit, section = cls(path.name), ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            unit.sections.setdefault(section, {}).setdefault(key.strip(), []).append(value.strip())
        return unit

    def get(self, key: str, section: str = "Service") -> list[str]:
        return self.sections.get(section, {}).get(key, [])


def install_paths(tmp_path: Path) -> dict[str, str]:
    return {
        "/opt/nurture": str(ROOT),
        "/etc/nurture": str(tmp_path / "etc"),
        "/run/nurture": str(tmp_path / "run" / "nurture"),
        "/run": str(tmp_path / "run"),
    }


def mapped(value: str, paths: dict[str, str]) -> str:
    for prefix, there in paths.items():  # longest prefixes first (dict order above)
        value = re.sub(rf"(?<![\w/]){re.escape(prefix)}(?=/|$|\s)", there, value)
    return value


def environment_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd reads them (comments and blanks skipped, quotes removed)."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip("'\"")
    return env


def unit_command(unit: Unit, tmp_path: Path, instance: str = "1") -> tuple[list[str], dict, Path]:
    """The ExecStart command line, its environment and working directory, as systemd builds them."""
    paths = install_paths(tmp_path)
    (start,) = unit.get("ExecStart")
    assert "%" not in start.replace("%i", ""), f"{unit.name}: unexpanded specifier in {start}"
    args = [mapped(arg, paths) for arg in shlex.split(start.replace("%i", instance))]
    env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8"}
    for line in unit.get("EnvironmentFile"):
        env |= environment_file(Path(mapped(line.lstrip("-"), paths)))
    for line in unit.get("Environment"):
        for assignment in shlex.split(line):
            key, _, value = assignment.partition("=")
            env[key] = mapped(value, paths)
    for line in unit.get("RuntimeDirectory"):
        for directory in line.split():
            (tmp_path / "run" / directory).mkdir(parents=True, exist_ok=True)
    (workdir,) = unit.get("WorkingDirectory")
    return args, env, Path(mapped(workdir, paths))


def procfile() -> dict[str, str]:
    entries = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


@pytest.fixture
def deployment(postgres_cluster, redis_url, smtp, clock, tmp_path: Path):
    """A migrated PostgreSQL database and the settings file an operator writes for it."""
    require(postgres_cluster is not None, "PostgreSQL server binaries")
    url = postgres_cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")
    app = make_app(url, clock)
    with app.app_context():
        from nurture.extensions import db

        db.engine.dispose()
    port = free_port()
    settings = {
        "NURTURE_SECRET_KEY": TestConfig.SECRET_KEY,
        "NURTURE_DATABASE_URL": url,
        "NURTURE_REDIS_URL": redis_url,
        "NURTURE_SMTP_URL": smtp.url,
        "NURTURE_BASE_URL": "https://talent.example.com",
        "NURTURE_INSTANCE_PATH": str(tmp_path / "instance"),
        "NURTURE_PORT": str(port),
        "NURTURE_WEB_WORKERS": "2",
        "NURTURE_SCHEDULER_INTERVAL": "1",
        "NURTURE_CLOCK": str(clock.path),
    }
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nurture.env").write_text(
        "# written by the test, as /etc/nurture/nurture.env\n"
        + "".join(f"{key}={value}\n" for key, value in settings.items())
    )
    yield settings, Redis.from_url(redis_url)


def http(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def last_pass(redis: Redis) -> PassRecord | None:
    return PassRecord.load(redis.get(LAST_PASS_KEY))


def become_ready(web: Process, worker: Process, scheduler: Process, port: int, redis) -> None:
    web.wait_for(lambda: http(port, "/readyz")[0] == 200, "the web tier to be ready")
    body = json.loads(http(port, "/readyz")[1])
    assert body["status"] == "ready" and all(c["ok"] for c in body["checks"].values())
    worker.wait_for(lambda: len(Worker.all(connection=redis)) == 1, "the worker to register")
    scheduler.wait_for(
        lambda: (record := last_pass(redis)) is not None and record.ok, "a scheduler pass"
    )


def stop_all(*processes: Process) -> None:
    for process in processes:
        process.stop(signal.SIGTERM)
    for process in processes:
        assert not process.alive()


def test_each_systemd_unit_starts_and_becomes_ready(deployment, tmp_path: Path) -> None:
    settings, redis = deployment
    units = {path.name: Unit.read(path) for path in UNITS.glob("*.service")}
    assert set(units) == {
        "nurture-web.service",
        "nurture-worker@.service",
        "nurture-scheduler.service",
    }
    for unit in units.values():
        assert unit.get("Restart") == ["always"], f"{unit.name} must come back when it dies"
        assert unit.get("WantedBy", "Install") == ["nurture.target"]
    target = Unit.read(UNITS / "nurture.target")
    wanted = target.get("Wants", "Unit")[0].split()
    assert {"nurture-web.service", "nurture-scheduler.service", "nurture-worker@1.service"} <= set(
        wanted
    )

    processes, envs = {}, {}
    for name, instance in (
        ("nurture-web.service", ""),
        ("nurture-worker@.service", "1"),
        ("nurture-scheduler.service", ""),
    ):
        args, env, workdir = unit_command(units[name], tmp_path, instance)
        assert workdir == ROOT
        processes[name] = Process(args, env, tmp_path / f"{name}.log", cwd=workdir)
        envs[name] = env
    web, worker, scheduler = processes.values()
    try:
        become_ready(web, worker, scheduler, int(settings["NURTURE_PORT"]), redis)
        # One metrics directory per machine: the web's /metrics sees the scheduler's passes.
        dirs = {env["PROMETHEUS_MULTIPROC_DIR"] for env in envs.values()}
        assert len(dirs) == 1
        shared = Path(dirs.pop())
        assert shared.is_relative_to(tmp_path / "run" / "nurture")

        def scheduler_counted() -> bool:
            status, text = http(int(settings["NURTURE_PORT"]), "/metrics")
            samples = {
                s.name: s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            return status == 200 and samples.get("nurture_scheduler_pass_seconds_count", 0) >= 1

        web.wait_for(scheduler_counted, "the scheduler's passes in the web's /metrics")
        assert any(path.name.startswith("histogram_") for path in shared.iterdir())
    finally:
        stop_all(web, worker, scheduler)
    for process in (web, worker, scheduler):
        for line in process.output.splitlines():
            assert json.loads(line)["process"] in ("web", "worker", "scheduler"), line


def test_each_procfile_line_starts_and_becomes_ready(deployment, tmp_path: Path) -> None:
    settings, redis = deployment
    entries = procfile()
    assert set(entries) == {"web", "worker", "scheduler"}
    # A Procfile runner (honcho, foreman) runs each line through a shell in the app's root,
    # with the virtualenv on PATH and the settings (.env) in the environment, and sets PORT.
    port = free_port()
    env = environment_file(tmp_path / "etc" / "nurture.env")
    env |= {"PATH": f"{BIN}:{SYSTEMD_PATH}", "LANG": "C.UTF-8", "PORT": str(port)}
    del env["NURTURE_PORT"]
    processes = {
        name: Process([command], env, tmp_path / f"procfile-{name}.log", shell=True)
        for name, command in entries.items()
    }
    try:
        become_ready(processes["web"], processes["worker"], processes["scheduler"], port, redis)
    finally:
        stop_all(*processes.values())


def test_the_example_settings_are_all_nurture_settings() -> None:
    example = environment_file(DEPLOY / "nurture.env.example")
    assert "NURTURE_SECRET_KEY" in example and "NURTURE_DATABASE_URL" in example
    # INSTANCE_PATH is read before there is a configuration (it says where the instance is).
    known = {key for key in dir(TestConfig) if key.isupper()} | {"INSTANCE_PATH"}
    assert {key.removeprefix("NURTURE_") for key in example} <= known
