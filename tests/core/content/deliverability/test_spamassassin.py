"""Every starter, exactly as sent, scored by SpamAssassin on local rules: at most 2.0 points."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from nurture.core.content.rendering import TemplateLibrary
from nurture.core.delivery.dkim import DkimSigner
from tests.conftest import require
from tests.core.content.deliverability.conftest import (
    STARTERS,
    candidate,
    render_as_sent,
    sparse_candidate,
)

THRESHOLD = 2.0
PEOPLE = {"complete": candidate, "sparse": sparse_candidate}
CASES = [(name, who) for name in STARTERS for who in PEOPLE]
OPTIONS = [
    "-L",  # local tests only: no DNS blocklists, URIBL, Razor, Pyzor or DKIM key lookups
    "-x",  # never create ~/.spamassassin
    "--cf=use_bayes 0",  # an untrained Bayes database says nothing; a receiver's is its own
    "--cf=add_header all Score _SCORE_",  # rounded: only a cross-check of the rules' sum
    "--cf=add_header all Rules _TESTSSCORES(,)_",
    "-D",
    "dns",  # its debug line shows that DNS was never available
]


@dataclass(frozen=True)
class Verdict:
    """What SpamAssassin made of one message."""

    score: float
    rules: dict[str, float]
    debug: str

    def describe(self) -> str:
        hits = ", ".join(f"{rule} {points:+.3f}" for rule, points in self.rules.items())
        return f"{self.score:.3f} points ({hits or 'no rules hit'})"


def as_received(wire: bytes, now: datetime) -> bytes:
    """The message as the receiving MX hands it to SpamAssassin, with its Received line.

    Without one SpamAssassin sees no relay at all, which is not what a receiver scores; the relay
    has a public address and matching reverse DNS, as a real one would.
    """
    received = (
        "Received: from smtp-out.example.com (smtp-out.example.com [185.70.40.25])\r\n"
        "\tby mx.example.org (Postfix) with ESMTPS id 4Q2mXk1Zp9z9sWc\r\n"
        f"\tfor <recipient@example.org>; {format_datetime(now)}\r\n"
    )
    return received.encode("ascii") + wire


def score(message: bytes, home: Path) -> Verdict:
    """Run Debian's ``spamassassin`` on one message and read its verdict headers."""
    done = subprocess.run(
        ["spamassassin", *OPTIONS, "-p", str(home / "user_prefs")],
        input=message,
        capture_output=True,
        env={**os.environ, "HOME": str(home)},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    scored = email.message_from_bytes(done.stdout, policy=email.policy.default)
    rules: dict[str, float] = {}
    for hit in "".join(str(scored["X-Spam-Rules"] or "").split()).split(","):
        if hit and hit != "none":
            rule, _, points = hit.partition("=")
            rules[rule] = float(points)
    total = sum(rules.values())  # X-Spam-Score is rounded to one decimal; 2.04 must fail
    assert abs(total - float(str(scored["X-Spam-Score"]))) < 0.051
    return Verdict(total, rules, done.stderr.decode(errors="replace"))


@pytest.fixture(scope="module")
def verdicts(
    library: TemplateLibrary, signer: DkimSigner, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Verdict]:
    """Every starter for every kind of candidate, scored (in parallel: each run takes seconds)."""
    require(shutil.which("spamassassin") is not None, "spamassassin")
    home = tmp_path_factory.mktemp("spamassassin")
    (home / "user_prefs").write_text("")
    now = datetime.now(UTC)
    messages = {
        (name, who): as_received(
            render_as_sent(library, name, signer, now, PEOPLE[who]()).wire, now
        )
        for name, who in CASES
    }
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = pool.map(lambda case: score(messages[case], home), CASES)
        found = dict(zip(CASES, results, strict=True))
    print(f"\nSpamAssassin, local rules only (fails above {THRESHOLD}):")
    for (name, who), verdict in found.items():
        print(f"  {name:24} {who:9} {verdict.describe()}")
    return found


@pytest.mark.parametrize(("name", "who"), CASES)
def test_a_starter_scores_at_most_two(
    verdicts: dict[tuple[str, str], Verdict], name: str, who: str
) -> None:
    verdict = verdicts[name, who]
    print(f"{name} for a {who} candidate: {verdict.describe()}")
    assert verdict.score <= THRESHOLD, f"{name} for a {who} candidate: {verdict.describe()}"


def test_no_network_test_ran(verdicts: dict[tuple[str, str], Verdict]) -> None:
    for verdict in verdicts.values():
        assert "DNS not available" in verdict.debug
        assert not any(
            rule.startswith(("URIBL", "RCVD_IN_", "RAZOR", "PYZOR", "DKIM_VALID"))
            for rule in verdict.rules
        )
