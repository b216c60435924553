"""What the operations instrumentation costs: per mail sent and per tracking hit.

Run it from the repository root:

    .venv/bin/python bench/observability.py            # 200,000 mails' and hits' worth
    .venv/bin/python bench/observability.py --quick    # 20,000

It times, in this process, exactly the code the instrumentation adds to the two hot paths, in
both of prometheus-client's modes (in memory, and the multiprocess files gunicorn and the
workers use under PROMETHEUS_MULTIPROC_DIR; each mode in its own child process, as the mode is
fixed when prometheus-client is first imported):

1. Per mail: ``BatchRecorder`` hearing a sent mail (counts, the due-to-sent delay and the
   rejection-to-first-mail histograms; the DEBUG line is off at INFO), its ``finish`` per batch
   of 50, and ``InstrumentedTransport`` around a relay that answers at once (two clock reads, a
   histogram).
2. Per tracking hit: the public blueprint's ``after_request`` hook counting an open.
3. For scale, a JSON log line (what a skipped or failed mail costs in addition), and the
   line the recorder does not write for a sent mail at INFO.

Figures are the median of five passes with the min-max. The script exits 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ is not a package: measure this checkout's nurture

import argparse
import io
import logging
import os
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta


def _passes(work, count: int, runs: int = 5) -> list[float]:
    """µs per item of ``work(count)``, once per run."""
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        work(count)
        out.append((time.perf_counter() - started) / count * 1e6)
    return out


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} µs ({min(values):.2f}-{max(values):.2f})"


def measure(count: int) -> None:
    """One mode's figures (run in a child process; see main)."""
    from flask import Response

    from nurture import create_app
    from nurture.config import TestConfig
    from nurture.core.delivery.sending import Batch
    from nurture.core.delivery.smtp import SmtpSettings, SmtpTransport
    from nurture.models import Campaign, Enrolment, Message, Step
    from nurture.observability import logs
    from nurture.tasks.telemetry import BatchRecorder, InstrumentedTransport
    from nurture.web.public.views import _count_hit

    now = datetime(2026, 3, 2, 10, tzinfo=UTC)
    campaign = Campaign(id=1, entry_type="ats_event")
    step = Step(id=1, campaign_id=1, position=0)
    enrolment = Enrolment(id=1, created_at=now - timedelta(hours=1))
    batch = Batch(
        messages=[], candidates={}, enrolments={1: enrolment}, campaigns={1: campaign},
        suppressed=set(), sent={}, steps={1: step},
    )  # fmt: skip
    message = Message(
        id=1, campaign_id=1, candidate_id=1, step_id=1, enrolment_id=1, state="sent", error="",
        attempts=1, queued_at=now - timedelta(seconds=30), retry_at=None, sent_at=now,
    )  # fmt: skip
    logging.getLogger().setLevel(logging.INFO)

    def recorded(n: int) -> None:
        for start in range(0, n, 50):
            recorder = BatchRecorder("job")
            for _ in range(min(50, n - start)):
                recorder(batch, message, "sent")
            logging.getLogger("nurture.sending").disabled = True  # the summary line: timed below
            recorder.finish(Counter(sent=50), list(range(50)))
            logging.getLogger("nurture.sending").disabled = False

    class Relay(SmtpTransport):
        def send(self, envelope_from: str, recipient: str, data: bytes) -> None:
            return None

    class Timed(InstrumentedTransport, Relay):
        pass

    settings = SmtpSettings("127.0.0.1", 25, "plain")
    plain, timed = Relay(settings), Timed(settings)

    def sends(transport):
        def run(n: int) -> None:
            for index in range(n):
                transport.send("a@example.com", "b@example.com", b"x")
                if index % 50 == 49 and hasattr(transport, "flush_metrics"):
                    transport.flush_metrics()  # as the send task does after each batch

        return run

    app = create_app(TestConfig)
    response = Response(b"GIF89a", mimetype="image/gif")

    def hits(n: int) -> None:
        with app.test_request_context("/o/some.token.gif"):
            for _ in range(n):
                _count_hit(response)

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("worker"))
    line_logger = logging.getLogger("bench.line")
    line_logger.addHandler(handler)
    line_logger.propagate = False
    line_logger.setLevel(logging.INFO)
    ids = {"message_id": 1, "campaign_id": 2, "candidate_id": 3, "reason": "suppressed"}

    def lines(n: int) -> None:
        for _ in range(n):
            line_logger.info("mail skipped", extra=ids)
        stream.seek(0)
        stream.truncate()

    def debug_lines(n: int) -> None:
        for _ in range(n):
            line_logger.debug("mail sent", extra=ids)

    recorded(count // 10)  # warm up: metrics made, files mapped
    hits(count // 10)
    rows = [
        ("per mail: BatchRecorder (sent), finish / 50", _passes(recorded, count)),
        ("per mail: transport timing and histogram",
         [t - p for t, p in zip(_passes(sends(timed), count), _passes(sends(plain), count),
                                strict=True)]),
        ("per tracking hit: after_request counter", _passes(hits, count)),
        ("a JSON log line (skipped/failed mails)", _passes(lines, count // 10)),
        ("a DEBUG line at INFO (sent mails)", _passes(debug_lines, count)),
    ]  # fmt: skip
    for label, values in rows:
        print(f"   {label:<44} {_spread(values)}")


def main(argv: list[str] | None = None) -> int:
    """Run each mode in a child process and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 instead of 200,000")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        measure(args.child)
        return 0
    count = 20_000 if args.quick else 200_000
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; load average {load}; "
          f"{count:,} per pass, 5 passes")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="nurture-metrics-") as shared:
        for title, extra in (
            ("prometheus-client in memory (no PROMETHEUS_MULTIPROC_DIR)", {}),
            ("multiprocess files (PROMETHEUS_MULTIPROC_DIR, as under gunicorn)",
             {"PROMETHEUS_MULTIPROC_DIR": shared}),
        ):  # fmt: skip
            print(f"\n{title}")
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            subprocess.run(
                [sys.executable, __file__, "--child", str(count)], env=env | extra, check=True
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
