"""gunicorn for nurture's web tier: ``gunicorn --config deploy/gunicorn.conf.py wsgi:app``.

Settings come from the environment, so the systemd unit, the Procfile and a shell agree:

- ``NURTURE_BIND`` (e.g. ``0.0.0.0:8000``), else ``127.0.0.1:$NURTURE_PORT`` (or ``$PORT``,
  as Procfile runners set it), else ``127.0.0.1:8000``: behind a TLS proxy on the same host.
- ``NURTURE_WEB_THREADS``: threads per worker, default 16 (gthread). Threads let the opens and
  clicks arriving together in one process share one transaction (group commit,
  ``nurture/web/public/committer.py``) and keep the proxy's keep-alive connections open; a sync
  worker answers one request at a time, so every hit pays its own COMMIT. A thread waits on its
  hit's commit (a few ms) while the others take the next requests.
- ``NURTURE_WEB_WORKERS``: worker processes, default one per 2 cores (at least one). On 2 cores
  shared with PostgreSQL and the load generator, bench/tracking.py measured one process of 16
  threads at 1,724 hits/s (about 8 hits per transaction, ~0.5 ms of server CPU per hit), two of
  8 at 1,538 (~2.5 hits per transaction, ~0.8 ms), two sync workers at 1,133: more processes
  split the batches. Give it more once PostgreSQL has cores of its own.
- ``NURTURE_ACCESS_LOG=1``: gunicorn's access log, as JSON lines without query strings or
  link tokens. Off by default: the TLS proxy keeps one, and a line per hit at full speed
  (~750-900 hits/s on 2 cores) is more than journald keeps (it drops past ~330 lines a second).
- ``PROMETHEUS_MULTIPROC_DIR``: where the workers count for ``/metrics`` (the systemd unit sets
  it). Unset, a private one is made here, so a scrape still sees every worker's counts.
"""

import multiprocessing
import os
import shutil
import tempfile

# Before anything imports prometheus_client: it picks multiprocess mode from the environment
# when first imported, and the workers forked from this master inherit both.
_made_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _made_metrics_dir = tempfile.mkdtemp(prefix="nurture-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_metrics_dir

from gunicorn.glogging import Logger as _GunicornLogger  # noqa: E402

from nurture.observability import logs as _logs  # noqa: E402
from nurture.observability import metrics as _metrics  # noqa: E402

_port = os.environ.get("NURTURE_PORT") or os.environ.get("PORT") or "8000"
bind = os.environ.get("NURTURE_BIND") or f"127.0.0.1:{_port}"
workers = int(os.environ.get("NURTURE_WEB_WORKERS") or max(1, multiprocessing.cpu_count() // 2))
threads = int(os.environ.get("NURTURE_WEB_THREADS") or 16)
worker_class = "gthread" if threads > 1 else "sync"
# Seconds an idle keep-alive connection stays open (the proxy in front reuses it).
keepalive = 5
# A request that takes longer is stuck (tracking hits take milliseconds, imports run in RQ).
timeout = 30
graceful_timeout = 20
# Only the local TLS proxy may say which scheme and client a request had.
forwarded_allow_ips = os.environ.get("NURTURE_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = "-" if os.environ.get("NURTURE_ACCESS_LOG", "").lower() in ("1", "true") else None
errorlog = "-"
# No gunicornc socket: one per user in $HOME would be shared by every gunicorn of the account.
control_socket_disable = True
# Workers are not recycled (no max_requests): each dead worker leaves its counter files behind.


class logger_class(_GunicornLogger):  # noqa: N801 - gunicorn reads the setting by this name
    """gunicorn's own lines (boot, worker exits, access) as the app's structured lines."""

    def setup(self, cfg):
        super().setup(cfg)
        _logs.gunicorn_setup(self.error_log, self.access_log)


def child_exit(server, worker):
    """A worker ended: drop its live gauges from the multiprocess directory."""
    _metrics.process_exited(worker.pid)


def on_exit(server):
    """The master stops: remove the metrics directory if it was made here."""
    if _made_metrics_dir:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)
