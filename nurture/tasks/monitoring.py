"""What the queue looks like from Redis: workers, jobs, failed jobs, the breaker, the last pass.

For the System page and ``/metrics``. Every read goes through a connection with short timeouts
and comes back as a :class:`RqSnapshot` whose ``error`` says what went wrong, so a Redis that is
down or blackholed makes a page say so instead of hanging or failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from flask import Flask, current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

from nurture.core.delivery.circuit import BreakerStatus, read_status
from nurture.observability.logs import scrub_text
from nurture.tasks import SEND_JOB
from nurture.tasks.stores import RedisStore
from nurture.tasks.telemetry import LAST_PASS_KEY, PassRecord

# Seconds a look at Redis may take before the page says Redis does not answer.
TIMEOUT = 2.0
# "module.SomeError: what happened", as a traceback's last word.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Timeout)\b")


@dataclass(frozen=True)
class WorkerInfo:
    """One registered RQ worker."""

    name: str
    hostname: str
    pid: int | None
    state: str
    current_job: str | None
    last_heartbeat: datetime | None
    birth: datetime | None
    successful: int
    failed: int


@dataclass(frozen=True)
class FailedJob:
    """A job RQ gave up on, as an operator needs to judge a retry."""

    id: str
    task: str
    ids: int  # how many ids (messages, an import) it carried
    first_ids: str
    failed_at: datetime | None
    error: str  # the exception's last line, addresses scrubbed


@dataclass
class RqSnapshot:
    """Redis's side of the system at one moment; ``error`` is set when Redis did not answer."""

    error: str = ""
    queue_length: int = 0
    started: int = 0
    workers: list[WorkerInfo] = field(default_factory=list)
    failed_count: int = 0
    failed: list[FailedJob] = field(default_factory=list)
    breaker: BreakerStatus | None = None
    last_pass: PassRecord | None = None

    @property
    def available(self) -> bool:
        """Whether Redis answered."""
        return not self.error


def monitor_redis(app: Flask | None = None) -> Redis:
    """A connection for looking, with short timeouts (the workers' own has none)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    conn = app.extensions.get("nurture.redis.monitor")
    if conn is None:
        conn = Redis.from_url(
            app.config["REDIS_URL"], socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        app.extensions["nurture.redis.monitor"] = conn
    return conn


def ping(url: str, timeout: float) -> None:
    """PING the Redis at ``url`` on a fresh connection; raises when it does not answer."""
    with Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout) as conn:
        conn.ping()


def snapshot(app: Flask | None = None, failed_limit: int = 0) -> RqSnapshot:
    """Workers, queue length, failed jobs (the newest ``failed_limit`` in detail) and more."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    conn = monitor_redis(app)
    queue = Queue(app.config["QUEUE_NAME"], connection=conn)
    try:
        failed = FailedJobRegistry(queue=queue)
        return RqSnapshot(
            queue_length=queue.count,
            started=StartedJobRegistry(queue=queue).count,
            workers=[_worker(w) for w in Worker.all(queue=queue)],
            failed_count=failed.count,
            failed=_failed_jobs(conn, failed, failed_limit) if failed_limit else [],
            breaker=read_status(RedisStore(conn)),
            last_pass=PassRecord.load(conn.get(LAST_PASS_KEY)),
        )
    except RedisError as exc:
        return RqSnapshot(error=_short(exc))


@dataclass(frozen=True)
class RetryResult:
    """What a retry did: jobs handed back, jobs no longer failed, or Redis's trouble."""

    requeued: int = 0
    gone: int = 0
    error: str = ""


def retry_failed(job_ids: list[str] | None, app: Flask | None = None) -> RetryResult:
    """Put failed jobs (``None``: all of them) back on their queue.

    Safe for send jobs: a worker claims each message with ``state = 'queued'``, so ids already
    sent, skipped or being sent are passed over and no mail goes out twice.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    registry = FailedJobRegistry(
        queue=Queue(app.config["QUEUE_NAME"], connection=monitor_redis(app))
    )
    requeued = gone = 0
    try:
        for job_id in registry.get_job_ids() if job_ids is None else job_ids:
            try:
                registry.requeue(job_id)
                requeued += 1
            except (InvalidJobOperation, NoSuchJobError):
                gone += 1  # retried already, or expired
    except RedisError as exc:
        return RetryResult(requeued, gone, _short(exc))
    return RetryResult(requeued, gone)


def _worker(worker: Worker) -> WorkerInfo:
    return WorkerInfo(
        name=worker.name,
        hostname=worker.hostname or "",
        pid=worker.pid,
        state=str(getattr(worker.get_state(), "value", worker.get_state())),
        current_job=worker.get_current_job_id(),
        last_heartbeat=worker.last_heartbeat,
        birth=worker.birth_date,
        successful=worker.successful_job_count,
        failed=worker.failed_job_count,
    )


def _failed_jobs(conn: Redis, registry: FailedJobRegistry, limit: int) -> list[FailedJob]:
    ids = registry.get_job_ids(0, limit - 1, desc=True)
    jobs = []
    for job in Job.fetch_many(ids, connection=conn):
        if job is None:
            continue
        args = job.args or ()
        carried = args[0] if args and isinstance(args[0], list) else list(args)
        shown = ", ".join(str(i) for i in carried[:5]) + (" …" if len(carried) > 5 else "")
        task = "send" if job.func_name == SEND_JOB else job.func_name.rsplit(".", 1)[-1]
        jobs.append(
            FailedJob(
                id=job.id,
                task=task,
                ids=len(carried),
                first_ids=shown,
                failed_at=job.ended_at,
                error=_last_line(_exc_string(job)),
            )
        )
    return jobs


def _exc_string(job: Job) -> str:
    result = job.latest_result()
    return (result.exc_string or "") if result is not None else ""


def _last_line(exc_info: str | None) -> str:
    """The line that names the exception (not SQLAlchemy's link to its docs after it)."""
    lines = [line.strip() for line in (exc_info or "").strip().splitlines() if line.strip()]
    named = [line for line in lines if _EXCEPTION_LINE.match(line)]
    chosen = named[-1] if named else (lines[-1] if lines else "")
    return scrub_text(chosen)[:300]


def _short(exc: Exception) -> str:
    """What went wrong, without the host and port an unauthenticated probe must not show."""
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        return "timed out"
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service" in text or "resolve" in text:
        return "host not found"
    if "auth" in text or "password" in text:
        return "authentication failed"
    return type(exc).__name__
