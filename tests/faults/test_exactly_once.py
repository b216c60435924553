"""Every mail sent once, whatever fails: each fault of the design's list, with real processes.

Each test starts a fresh world (a database with N candidates and a broadcast to them, its own
``redis-server`` and SMTP sink), runs ``nurture scheduler`` and ``nurture worker`` processes as
an operator would, injects one fault when about 30 % of the mail has reached the sink, restores
what the fault took away, waits until every message row is final, and counts at the sink:
nobody lost, nobody mailed twice, every process still running (or, where the test killed it,
its replacement).

The one allowance is the crash of a worker between the relay taking a mail and the worker
recording it (at most one mail per killed worker, ``DUPLICATES_PER_KILLED_WORKER``): no SMTP
client can close that window, so the resend is allowed, but only with the Message-ID the first
copy carried. ``test_sigkill_of_a_worker`` puts the kill inside that window on purpose (the sink
holds back the 250 of one mail), so that it checks the allowance every time instead of by
chance; ``test_repeated_sigkills_of_workers`` kills at random moments and reports how often
the window is hit. A database outage in the same window must *not* resend: the worker keeps
trying to record the mail until the database is back (``test_postgresql_restarted``).

``pytest tests/faults -q`` prints one line per scenario in the terminal summary.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.faults.harness import DEFAULT_TIMERS, World

pytestmark = pytest.mark.faults

N = 400  # candidates in each scenario's broadcast
FAULT_AT = 0.3  # the fault comes once this share of the mail reached the sink
PAUSE_SECONDS = 2.0
# No mail of a paused campaign may reach the relay later than this after the pause.
PAUSE_GRACE_SECONDS = 1.0
SMTP_OUTAGE_SECONDS = 3.0
REDIS_OUTAGE_SECONDS = 2.0
# Longer than the scenarios' worker lease (4 s): every heartbeat goes stale meanwhile.
POSTGRES_OUTAGE_SECONDS = 5.0
# Mails a killed worker may have handed to the relay without recording it: the one in flight.
DUPLICATES_PER_KILLED_WORKER = 1
KILLS = 5
# With the operator's timers (not shortened), a killed worker's mail is back within this.
RECOVERY_SECONDS = 60.0


def test_no_fault(world: World) -> None:
    """The baseline: one scheduler, two workers, nothing goes wrong."""
    world.start()
    world.activate()
    world.settle().check()


def test_sigkill_of_a_worker(world: World) -> None:
    """A worker SIGKILLed mid-SMTP-conversation, with the operator's timers; a supervisor starts
    another. Its claimed mail is sent within a minute, the one in flight with its Message-ID."""
    world.start(**DEFAULT_TIMERS)
    world.activate()
    world.wait_received(FAULT_AT)
    world.sink.hold()  # the next mail's 250 waits: its worker is mid-conversation
    sender = world.sender_of(world.wait_held())
    killed_at = time.monotonic()
    world.replace(sender)  # SIGKILL, and a new worker in its place
    world.sink.release()
    outcome = world.settle(timeout=RECOVERY_SECONDS)
    recovered = outcome.final_at - killed_at
    outcome.notes.append(f"the killed worker's mail was all sent {recovered:.1f} s after the kill")
    outcome.check(duplicates_allowed=DUPLICATES_PER_KILLED_WORKER)
    assert recovered < RECOVERY_SECONDS


def test_repeated_sigkills_of_workers(world: World) -> None:
    """Workers SIGKILLed at random moments, again and again: at most one resend per kill (the
    window between the relay's 250 and the database's COMMIT), each with the same Message-ID."""
    world.start()
    world.activate()
    world.kill_workers_repeatedly(KILLS, random.Random())
    outcome = world.settle()
    window = len(outcome.tally.duplicated)
    outcome.notes.append(f"the window: {window} resends in {KILLS} kills")
    outcome.check(duplicates_allowed=DUPLICATES_PER_KILLED_WORKER * KILLS)


def test_sigterm_of_a_worker(world: World) -> None:
    """A worker asked to stop mid-batch (SIGTERM): it finishes the mail in hand, hands the rest
    of its batch back, and exits with status 0."""
    world.start()
    world.activate()
    world.wait_received(FAULT_AT)
    status = world.terminate(world.workers()[0])
    world.spawn("worker")
    outcome = world.settle()
    outcome.check()
    assert status == 0, f"the worker exited with {status} on SIGTERM"


def test_redis_killed_and_restarted_empty(world: World) -> None:
    """Redis SIGKILLed with a job in flight, down a few seconds, back empty on the same port:
    the workers wait it out and reconnect, the scheduler enqueues the lost jobs again."""
    world.start()
    world.activate()
    world.wait_received(FAULT_AT)
    world.sink.hold()  # a job is mid-run when Redis goes: RQ's bookkeeping after it fails
    world.wait_held()
    world.redis.kill()
    world.sink.release()
    world.elapse(REDIS_OUTAGE_SECONDS)
    world.redis.start()  # same port, no data
    world.settle().check()


def test_postgresql_restarted(world: World) -> None:
    """PostgreSQL restarted with a fast shutdown while a mail's 250 is on its way: that mail's
    record fails on the dropped connection and is retried until it is written, not resent."""
    world.start()
    world.activate()
    world.wait_received(FAULT_AT)
    world.sink.hold()
    world.wait_held()
    world.cluster.restart()
    world.sink.release()
    world.settle().check()


def test_postgresql_down_longer_than_the_lease(world: World) -> None:
    """PostgreSQL stopped for longer than a worker's lease: every heartbeat goes stale, yet no
    live worker's claim is handed to another, and the workers carry on once it is back."""
    world.start()
    world.activate()
    world.wait_received(FAULT_AT)
    world.sink.hold()
    world.wait_held()
    world.cluster.restart(down_for=POSTGRES_OUTAGE_SECONDS)
    world.sink.release()
    world.settle().check()


def test_smtp_server_down_for_a_while(world: World) -> None:
    """The relay goes away for a few seconds and comes back on the same port."""
    world.start()
    world.activate()
    world.wait_received(FAULT_AT)
    world.sink.stop()
    world.elapse(SMTP_OUTAGE_SECONDS)
    world.sink.start()
    world.settle().check()


def test_pause_and_resume_twice(world: World) -> None:
    """No mail of a paused campaign may leave more than a second after the pause."""
    world.start()
    world.activate()
    for share in (FAULT_AT, 2 * FAULT_AT):
        world.wait_received(share)
        paused_at = world.pause()
        world.elapse(PAUSE_SECONDS)
        world.resume(paused_at)
    world.settle(pause_grace=PAUSE_GRACE_SECONDS).check()


def test_two_schedulers_and_four_workers(world: World) -> None:
    """Several schedulers and workers at once: the row claims keep each mail to one sender."""
    world.start(schedulers=2, workers=4)
    world.activate()
    world.settle().check()


def test_sigkill_of_the_scheduler(world: World) -> None:
    """The scheduler SIGKILLed mid-run; a supervisor starts another."""
    world.start()
    world.activate()
    world.wait_received(FAULT_AT)
    [scheduler] = [p for p in world.current if p.name.startswith("scheduler")]
    world.replace(scheduler)
    world.settle().check()


def test_redis_flushall(world: World) -> None:
    """FLUSHALL: every job id gone; the scheduler sees the queue emptied and enqueues again."""
    world.start()
    world.activate()
    world.wait_received(FAULT_AT)
    world.redis.flushall()
    world.settle().check()
