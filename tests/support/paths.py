"""Where the tests' own files are: the fixtures, the screenshots, the checkout."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
ARTIFACTS = TESTS / "artifacts"
