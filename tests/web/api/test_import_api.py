"""POST /api/v1/candidates/import: dry run, import, mapping and tags, large files, errors."""

from __future__ import annotations

import io
import json

from flask import Flask
from sqlalchemy import func, select

from nurture.extensions import db
from nurture.models import Candidate, Import
from nurture.tasks.imports import run_import_task
from nurture.web.api import imports as api_imports
from tests.conftest import auth_headers
from tests.support.paths import FIXTURES

FIXTURE = FIXTURES / "candidates.csv"
URL = "/api/v1/candidates/import"
BAD = [(6, "E-mail"), (14, "Timezone")]


def _post(client, headers, data: bytes | None = None, name: str = "people.csv", **form):
    body = dict(form)
    if data is not None:
        body["file"] = (io.BytesIO(data), name)
    return client.post(URL, data=body, headers=headers, content_type="multipart/form-data")


def _count(model=Candidate) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _error(answer, status: int) -> dict:
    assert answer.status_code == status, answer.get_data(as_text=True)
    error = answer.json["error"]
    assert error["code"] and error["message"] and isinstance(error["fields"], dict)
    return error


def test_a_dry_run_reports_the_bad_rows_and_writes_nothing(app: Flask, client) -> None:
    editor = auth_headers(app, "editor")
    answer = _post(client, editor, FIXTURE.read_bytes(), dry_run="true")
    assert answer.status_code == 200, answer.json
    report = answer.json
    assert report["dry_run"] is True
    assert (report["created"], report["updated"], report["rejected_count"]) == (18, 0, 2)
    assert [(r["line"], r["field"]) for r in report["rejected"]] == BAD
    assert report["mapping"]["E-mail"] == "email"
    assert _count() == 0 and _count(Import) == 0


def test_an_import_lands_the_good_rows_and_reports_the_bad_ones(app: Flask, client) -> None:
    editor = auth_headers(app, "editor")
    answer = _post(
        client,
        editor,
        FIXTURE.read_bytes(),
        tags="Spring-2026, talent",
        mapping=json.dumps({"LinkedIn": "", "Team": "tags"}),
    )
    assert answer.status_code == 200, answer.json
    report = answer.json
    assert report["status"] == "done" and report["dry_run"] is False
    assert (report["created"], report["updated"], report["rejected_count"]) == (18, 0, 2)
    assert [(r["line"], r["field"]) for r in report["rejected"]] == BAD
    assert all(r["reason"] for r in report["rejected"])
    assert _count() == 18
    ana = db.session.scalar(select(Candidate).where(Candidate.email == "ana.lima@example.org"))
    assert ana.tag_names == ["platform", "spring-2026", "talent"]
    assert ana.attributes == {}
    # The same file again updates everyone.
    again = _post(client, editor, FIXTURE.read_bytes()).json
    assert (again["created"], again["updated"], again["rejected_count"]) == (0, 18, 2)
    status = client.get(f"/api/v1/imports/{report['id']}", headers=editor)
    assert status.status_code == 200 and status.json["created"] == 18


def test_tags_may_be_a_json_list_and_cp1252_is_noted(app: Flask, client) -> None:
    data = "Email;Prénom;Année\nzoe@example.org;Zoë;2024\n".encode("cp1252")
    answer = _post(client, auth_headers(app, "editor"), data, tags='["Pool A"]')
    assert answer.status_code == 200, answer.json
    assert any("Windows-1252" in n for n in answer.json["notes"])
    zoe = db.session.scalar(select(Candidate))
    assert zoe.first_name == "Zoë" and zoe.tag_names == ["pool a"]
    assert zoe.attributes == {"année": "2024"}


def test_a_large_file_goes_to_a_worker(app: Flask, client, monkeypatch) -> None:
    queued: list[int] = []
    monkeypatch.setattr(api_imports, "SYNC_MAX_ROWS", 5)
    monkeypatch.setattr(api_imports, "enqueue_import", queued.append)
    editor = auth_headers(app, "editor")
    answer = _post(client, editor, FIXTURE.read_bytes())
    assert answer.status_code == 202, answer.json
    assert answer.json["status"] == "running" and answer.json["total_rows"] == 20
    assert queued == [answer.json["id"]] and _count() == 0
    run_import_task(queued[0])
    done = client.get(answer.json["status_url"], headers=editor).json
    assert (done["status"], done["created"], done["rejected_count"]) == ("done", 18, 2)


def test_bad_requests_get_json_errors_with_the_field(app: Flask, client) -> None:
    editor = auth_headers(app, "editor")
    assert _error(_post(client, editor), 422)["fields"] == {"file": "is required"}
    assert "empty" in _error(_post(client, editor, b""), 422)["fields"]["file"]
    assert "file" in _error(_post(client, editor, b"a@example.org,Ana\n"), 422)["fields"]
    bad_json = _post(client, editor, FIXTURE.read_bytes(), mapping="{not json")
    assert "mapping" in _error(bad_json, 422)["fields"]
    unknown_field = _post(
        client, editor, FIXTURE.read_bytes(), mapping=json.dumps({"Team": "shoe_size"})
    )
    assert "mapping.Team" in _error(unknown_field, 422)["fields"]
    no_email = _post(client, editor, FIXTURE.read_bytes(), mapping=json.dumps({"E-mail": ""}))
    assert "map one column to Email" in _error(no_email, 422)["fields"]["mapping"]
    long_tag = _post(client, editor, FIXTURE.read_bytes(), tags="x" * 101)
    assert "tags" in _error(long_tag, 422)["fields"]
    assert _count() == 0 and _count(Import) == 0


def test_only_editors_may_import(app: Flask, client) -> None:
    data = FIXTURE.read_bytes()
    assert _error(_post(client, {}, data), 401)["code"] == "unauthorized"
    assert _error(_post(client, auth_headers(app, "viewer"), data), 403)["code"] == "forbidden"
    assert _count() == 0
