"""Issue 12, "one meaning per word": the symbol renames, as a script the integrator can replay.

"job" meant a job opening, a CSV import and an RQ job. After this script a job opening is an
``Opening`` (its matches ``OpeningMatch``), a CSV run is an ``Import``, and the RQ side says
"task". URLs (/api/v1/jobs, /admin/jobs), CLI commands, environment variables and JSON field
names do not change; the tables are renamed by migration 0008, which keeps the rows.

Run from the checkout's root: ``python scripts/renames/one_meaning_per_word.py``. It is
idempotent: a second run changes nothing. Old migrations are left alone (they build the old
tables that 0008 renames).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("nurture", "tests", "bench")
SUFFIXES = (".py", ".html", ".md")

# (pattern, replacement): applied to every file of TREES, whole words only.
EVERYWHERE: list[tuple[str, str]] = [
    # models
    (r"\bJobOpening\b", "Opening"),
    (r"\bJobMatch\b", "OpeningMatch"),
    (r"\bImportJob\b", "Import"),
    (r"\bOpeningMatch\.job_id\b", "OpeningMatch.opening_id"),
    # core/campaigns/openings.py
    (r"\bjob_service\b", "opening_service"),
    (r"\bopening_service\.create_job\b", "opening_service.create_opening"),
    (r"\bjob_or_404\b", "opening_or_404"),
    (r"\bopen_job\b", "open_for_review"),
    (r"\bjob_dict\b", "opening_dict"),
    (r"\bjob_context\b", "opening_context"),
    # workflows/imports.py
    (r"\bnew_job\b", "new_import"),
    (r"\bjob_report\b", "import_report"),
    # tasks/imports.py: an RQ job is a task
    # (the old name stays as an alias for tasks already queued under it)
    (r"\brun_import_job\b(?! = run_import_task)", "run_import_task"),
    (r"\bIMPORT_JOB\b", "IMPORT_TASK"),
]

# (file, pattern, replacement): names that mean different things in different files.
PER_FILE: list[tuple[str, str, str]] = [
    ("nurture/core/campaigns/openings.py", r"\bcreate_job\b", "create_opening"),
    ("nurture/web/api/openings.py", r"\bcreate_job\b", "create_opening"),
    ("nurture/web/api/openings.py", r"\bget_job\b", "get_opening"),
    ("nurture/web/api/openings.py", r"\bjob_matches\b", "opening_matches"),
    ("nurture/web/api/openings.py", r"\bapprove_job\b", "approve_opening"),
    ("nurture/web/api/openings.py", r"\b_job_or_404\b", "_opening_or_404"),
    ("nurture/web/admin/openings/views.py", r"\b_job_or_404\b", "_opening_or_404"),
    ("nurture/web/admin/imports/views.py", r"\b_job_or_404\b", "_import_or_404"),
    ("nurture/models/openings.py", r'"job_openings', '"openings'),
    ("nurture/models/openings.py", r'"job_matches"', '"opening_matches"'),
    ("nurture/models/openings.py", r'"job_id"', '"opening_id"'),
    ("nurture/models/openings.py", r"\bjob_id: Mapped", "opening_id: Mapped"),
    ("nurture/models/imports.py", r'"import_jobs"', '"imports"'),
    ("nurture/core/campaigns/openings.py", r'"job_id": job\.id', '"opening_id": job.id'),
    ("nurture/core/campaigns/openings.py", r"\bjob_id=job\.id", "opening_id=job.id"),
    ("tests/services/test_jobs.py", r"\bcreate_job\b", "create_opening"),
    ("tests/services/test_imports.py", r"\bFROM import_jobs\b", "FROM imports"),
]


def _apply(text: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text)
    return text


def main() -> int:
    changed = []
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*")):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            relative = path.relative_to(ROOT).as_posix()
            text = path.read_text(encoding="utf-8")
            rules = EVERYWHERE + [(p, r) for f, p, r in PER_FILE if f == relative]
            new = _apply(text, rules)
            if new != text:
                path.write_text(new, encoding="utf-8")
                changed.append(relative)
    print("\n".join(changed) or "nothing to rename")
    ruff = shutil.which("ruff") or str(ROOT / ".venv" / "bin" / "ruff")
    python = [p for p in changed if p.endswith(".py")]
    if python and Path(ruff).exists():
        # Longer names make longer lines; the tree is kept ruff-formatted and import-sorted.
        subprocess.run([ruff, "check", "--fix", "--select", "I", "-q", *python], cwd=ROOT)
        subprocess.run([ruff, "format", "-q", *python], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
