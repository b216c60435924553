"""A/B subjects: a step tries 2-4 subject lines (and preview texts) on a sample of its mails,
the rest wait; after a set time or sample size the variant with the most unique human opens
(or clicks) per candidate mailed goes to the rest — if the difference is significant.

Significance is a two-proportion z-test (pooled, two-sided) of the best variant against the
runner-up. When it is not significant (p ≥ ``ALPHA``) there is "no clear winner" and the stated
rule applies: variant A, the first, goes to the rest. Machine opens (privacy proxies, link
scanners) never count: only events with ``machine`` false do.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import distinct, func, select, update
from sqlalchemy.orm import Session

from nurture.models import (
    HELD_FOR_AB_WINNER,
    Event,
    EventKind,
    Message,
    MessageState,
    Step,
    StepVariant,
)

ALPHA = 0.05
METRICS = {"opens": EventKind.OPEN, "clicks": EventKind.CLICK}
NO_CLEAR_WINNER_RULE = "no clear winner: variant A (the first) goes to the rest"
# A mail waiting for the winner is looked at again at least this often (the decision releases
# the waiting mails at once; this is the safety net for a mail held by a stale batch).
RECHECK = timedelta(minutes=10)


def p_text(p: float) -> str:
    """A p-value as people read it: ``p = 0.043``, or ``p < 0.001``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def has_test(step: Step) -> bool:
    """Whether the step tries subject variants."""
    return bool(step.ab_sample_percent) and len(step.variants) >= 2


def ab_group(message_id: int, sample_percent: int, variants: int) -> int | None:
    """The variant (position) a mail tries, or None when it waits for the winner.

    Fixed by the ledger row's id (Knuth's multiplicative hash), so a retried or re-claimed mail
    keeps its group and two workers agree, with no shared counter.
    """
    mixed = (message_id * 2654435761) % 2**32
    if mixed % 100 >= sample_percent:
        return None
    return (mixed // 100) % variants


def hold_until(step: Step, now: datetime) -> datetime:
    """When a mail waiting for the winner is looked at again."""
    if step.ab_started_at is not None and step.ab_decide_after_seconds:
        deadline = step.ab_started_at + timedelta(seconds=step.ab_decide_after_seconds)
        return max(min(deadline, now + RECHECK), now + timedelta(seconds=1))
    return now + RECHECK


def two_proportion_z(successes_a: int, n_a: int, successes_b: int, n_b: int) -> tuple[float, float]:
    """z and the two-sided p-value of "the two rates differ" (pooled two-proportion z-test).

    (0, 1) when there is nothing to compare (a side with no mail, or no variance at all).
    """
    if not n_a or not n_b:
        return 0.0, 1.0
    pooled = (successes_a + successes_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if spread == 0:
        return 0.0, 1.0
    z = (successes_a / n_a - successes_b / n_b) / spread
    return z, math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class VariantFigures:
    """How one variant did: candidates mailed, those who opened (or clicked), the rate."""

    position: int
    label: str
    subject: str
    preheader: str
    sent: int
    successes: int

    @property
    def rate(self) -> float | None:
        """Successes per candidate mailed, as a percentage (one decimal)."""
        return round(100 * self.successes / self.sent, 1) if self.sent else None

    def as_dict(self) -> dict[str, Any]:
        """The API's shape."""
        return {**asdict(self), "rate": self.rate}


@dataclass(frozen=True)
class Evaluation:
    """The test now: each variant's figures and what the z-test says."""

    metric: str
    variants: list[VariantFigures]
    best: int | None  # position of the highest rate
    z: float
    p_value: float
    significant: bool
    winner: int | None  # the decided winner, once decided
    decided_at: datetime | None
    rule: str  # how the winner was (or will be) chosen, in words
    waiting: int  # mails held for the winner

    def as_dict(self) -> dict[str, Any]:
        """The API's shape."""
        return {
            "metric": self.metric,
            "variants": [v.as_dict() for v in self.variants],
            "best": self.best,
            "z": round(self.z, 3),
            "p_value": round(self.p_value, 4),
            "significant": self.significant,
            "winner": self.winner,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "rule": self.rule,
            "waiting": self.waiting,
        }


def figures(session: Session, step: Step) -> list[VariantFigures]:
    """Per variant: unique candidates mailed and unique candidates with a human open/click."""
    kind = METRICS.get(step.ab_metric, EventKind.OPEN)
    # Only the sample's mail carries a variant: the winner's mail to the rest is not counted.
    sampled = Message.ab_variant.is_not(None)
    won = dict(
        session.execute(
            select(Message.ab_variant, func.count(distinct(Message.candidate_id)))
            .join(Event, Event.message_id == Message.id)
            .where(
                Message.step_id == step.id,
                Message.state == MessageState.SENT,
                sampled,
                Event.kind == kind,
                Event.machine.is_(False),
            )
            .group_by(Message.ab_variant)
        ).all()
    )
    sent = dict(
        session.execute(
            select(Message.ab_variant, func.count(distinct(Message.candidate_id)))
            .where(Message.step_id == step.id, Message.state == MessageState.SENT, sampled)
            .group_by(Message.ab_variant)
        ).all()
    )
    return [
        VariantFigures(
            v.position,
            v.label,
            v.subject,
            v.preheader,
            sent.get(v.position, 0),
            won.get(v.position, 0),
        )  # fmt: skip
        for v in step.variants
    ]


def evaluate(session: Session, step: Step) -> Evaluation:
    """The test's figures and significance now (the decided result once there is one)."""
    found = figures(session, step)
    ranked = sorted(found, key=lambda v: (-(v.rate or 0.0), v.position))
    best, runner_up = ranked[0], ranked[1]
    z, p = two_proportion_z(best.successes, best.sent, runner_up.successes, runner_up.sent)
    significant = p < ALPHA and (best.rate or 0) > (runner_up.rate or 0)
    if step.ab_decided_at is not None:
        rule = step.ab_result.get("rule", "")
    elif significant:
        rule = f"{best.label} leads significantly ({p_text(p)}); it goes to the rest when decided"
    else:
        rule = f"no clear winner yet ({p_text(p)}); if it stays so, {NO_CLEAR_WINNER_RULE}"
    waiting = session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            Message.step_id == step.id,
            Message.state == MessageState.QUEUED,
            Message.error == HELD_FOR_AB_WINNER,
        )
    )
    return Evaluation(
        step.ab_metric, found, best.position if best.sent else None, z, p, significant,
        step.ab_winner, step.ab_decided_at, rule, waiting or 0,
    )  # fmt: skip


def _due(step: Step, found: list[VariantFigures], now: datetime) -> bool:
    if step.ab_started_at is None:
        return False
    if step.ab_decide_after_seconds and now >= step.ab_started_at + timedelta(
        seconds=step.ab_decide_after_seconds
    ):
        return True
    return bool(step.ab_min_sample) and all(v.sent >= step.ab_min_sample for v in found)


def decide(session: Session, step: Step, now: datetime) -> Evaluation:
    """Choose the winner now (significant best, else variant A) and release the waiting mail."""
    live = evaluate(session, step)
    if live.significant and live.best is not None:
        winner = live.best
        label = "ABCD"[winner]
        rule = f"{label} won on unique human {step.ab_metric} ({p_text(live.p_value)})"
    else:
        winner = 0
        rule = f"{NO_CLEAR_WINNER_RULE} ({p_text(live.p_value)})"
    step.ab_winner = winner
    step.ab_decided_at = now
    step.ab_result = {
        **live.as_dict(),
        "winner": winner,
        "decided_at": now.isoformat(),
        "rule": rule,
    }
    # The waiting mail goes at the scheduler's next pass, with the winner's subject.
    session.execute(
        update(Message)
        .where(
            Message.step_id == step.id,
            Message.state == MessageState.QUEUED,
            Message.error == HELD_FOR_AB_WINNER,
        )
        .values(retry_at=None, enqueued_at=None, error="")
    )
    session.flush()
    return evaluate(session, step)


def decide_due(session: Session, now: datetime) -> list[int]:
    """Decide every running test whose time or sample size has come; returns the step ids."""
    running = session.scalars(
        select(Step).where(
            Step.ab_sample_percent > 0,
            Step.ab_started_at.is_not(None),
            Step.ab_decided_at.is_(None),
            Step.id.in_(select(StepVariant.step_id)),
        )
    ).all()
    decided = []
    for step in running:
        if has_test(step) and _due(step, figures(session, step), now):
            decide(session, step, now)
            decided.append(step.id)
    return decided
