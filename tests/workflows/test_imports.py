"""CSV import service: reading uploads, mapping, the dry run and the batched import."""

from __future__ import annotations

import codecs

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from nurture.core import csvfiles
from nurture.core.audience.candidates import upsert_candidate
from nurture.core.compliance.suppressions import suppress
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.models import (
    Campaign,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    Enrolment,
    EntryType,
    Import,
    ImportStatus,
    Step,
)
from nurture.tasks.imports import run_import_task
from nurture.workflows import imports as service
from tests.conftest import make_app
from tests.support.paths import FIXTURES

FIXTURE = FIXTURES / "candidates.csv"
BAD_LINES = {6: "E-mail", 14: "Timezone"}


def _now(app: Flask):
    return app.extensions["nurture.clock"].now()


def _job(app: Flask, data: bytes, **kwargs) -> Import:
    job, _ = service.create_import(db.session, data, "people.csv", _now(app), **kwargs)
    db.session.commit()
    return job


def _candidates() -> int:
    return db.session.scalar(select(func.count()).select_from(Candidate))


def _run(app: Flask, job: Import, batch: int = 500) -> Import:
    service.start(job)
    db.session.commit()
    return service.run_import(db.session, job.id, _now(app), batch=batch)


# --- reading the upload -------------------------------------------------------------------


def test_mapping_is_proposed_from_the_header_names() -> None:
    header = [
        "E-mail",
        "Email Address (2)",
        "First Name",
        "surname",
        "Skills",
        "Tags",
        "Timezone",
        "Stage",
        "Role",
        "Rejection reason",
        "Strengths",
        "Source",
        "Recruiter email",
        "Recruiter name",
        "Location",
        "Consent date",
        "Shoe size",
    ]
    mapping = service.propose_mapping(header)
    assert mapping == {
        "E-mail": "email",
        "Email Address (2)": "attribute",  # a second address column is not mapped twice
        "First Name": "first_name",
        "surname": "last_name",
        "Skills": "skills",
        "Tags": "tags",
        "Timezone": "timezone",
        "Stage": "stage",
        "Role": "role",
        "Rejection reason": "rejection_reason",
        "Strengths": "strengths",
        "Source": "source",
        "Recruiter email": "recruiter_email",
        "Recruiter name": "recruiter_name",
        "Location": "location",
        "Consent date": "consent_at",
        "Shoe size": "attribute",
    }
    assert service.propose_mapping(["Email Address", "Shoe size"], unknown="") == {
        "Email Address": "email",
        "Shoe size": "",
    }
    assert service.propose_mapping(["Name", "Email"])["Name"] == "full_name"
    assert service.propose_mapping(["Recruiter's e-mail", "Mailing address", "Email"]) == {
        "Recruiter's e-mail": "recruiter_email",
        "Mailing address": "attribute",
        "Email": "email",
    }


def test_a_bad_mapping_is_refused_with_the_column() -> None:
    header = ["Email", "Work email", "Name", "First"]
    mapping = {"Email": "email", "Work email": "email", "Name": "full_name", "First": "first_name"}
    problems = service.check_mapping(header, mapping)
    assert problems["Work email"] == "Email is already taken by the column “Email”"
    assert "full-name" in problems["Name"]
    assert "map one column to Email" in service.check_mapping(header, {"Email": ""})["mapping"]
    assert "not a candidate field" in service.check_mapping(header, {"Email": "shoe"})["Email"]


def test_utf8_with_and_without_bom_and_utf16() -> None:
    body = "email,first_name\nzoe@example.org,Zoë\n"
    for data in (body.encode(), codecs.BOM_UTF8 + body.encode(), body.encode("utf-16")):
        csv_file = service.read_csv(data)
        assert csv_file.header == ["email", "first_name"]
        assert "Zoë" in csv_file.text and csv_file.notes == []


def test_windows_1252_and_latin1_are_read_with_a_note() -> None:
    csv_file = service.read_csv("email,first_name\nzoe@example.org,Zoë “Z”\n".encode("cp1252"))
    assert "Zoë “Z”" in csv_file.text
    assert "Windows-1252" in csv_file.notes[0]
    # 0x81 is undefined in cp1252: Latin-1 reads every byte.
    csv_file = service.read_csv(b"email,first_name\nzoe@example.org,Zo\xeb\x81\n")
    assert "Zoë" in csv_file.text and "Latin-1" in csv_file.notes[0]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_sniffed(delimiter: str) -> None:
    # Semicolons and commas inside values must not fool it.
    rows = [
        ["email", "first_name", "skills", "strengths"],
        ["a@example.org", "Ana", "python; go", '"calm, careful"'],
        ["b@example.org", "Ben", "sql; spark", "clear, kind"],
    ]
    if delimiter == ",":
        rows = [[c.replace('"', "") for c in r] for r in rows]
        rows[2][3] = '"clear, kind"'
        rows[1][3] = '"calm, careful"'
    data = "\n".join(delimiter.join(r) for r in rows).encode()
    csv_file = service.read_csv(data)
    assert csv_file.delimiter == delimiter
    assert csv_file.header == ["email", "first_name", "skills", "strengths"]
    assert csv_file.total_rows == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        (b"  \r\n\n", "The file is empty."),
        (b"email,first_name\n", "no rows"),
        (b"ana@example.org,Ana\nben@example.org,Ben\n", "not column names"),
        (b"PK\x03\x04\x14\x00\x06\x00", "not a CSV file"),
        (b"x" * (csvfiles.MAX_BYTES + 1), "larger than 20 MB"),
        ((",".join(f"c{i}" for i in range(300)) + "\n1\n").encode(), "at most 200"),
    ],
)
def test_uploads_that_cannot_be_imported_are_refused_with_a_reason(
    data: bytes, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        service.read_csv(data)
    assert message in caught.value.fields["file"]


def test_blank_and_duplicate_header_names_get_usable_names() -> None:
    csv_file = service.read_csv(b"email,,Note,Note\na@example.org,1,2,3\n")
    assert csv_file.header == ["email", "Column 2", "Note", "Note (2)"]


# --- preview and dry run ------------------------------------------------------------------


def test_preview_shows_the_first_rows_as_mapped(app: Flask) -> None:
    job = _job(app, FIXTURE.read_bytes(), tags=["spring-2026"])
    rows = service.preview(job, 5)
    assert [r.line for r in rows] == [2, 3, 4, 5, 6]
    ana = rows[0].data
    assert ana["email"] == "ana.lima@example.org"
    assert ana["skills"] == ["go", "kubernetes", "python"]
    assert ana["tags"] == ["spring-2026"]
    assert ana["attributes"] == {
        "team": "Platform",
        "linkedin": "https://www.linkedin.com/in/analima",
    }
    assert rows[4].errors == [
        {"line": 6, "field": "E-mail", "reason": "There must be something after the @-sign."}
    ]


def test_the_dry_run_reports_exactly_the_bad_rows_and_writes_nothing(app: Flask) -> None:
    job = _job(app, FIXTURE.read_bytes())
    report = service.dry_run(db.session, job)
    assert {(e["line"], e["field"]) for e in report.rejected} == set(BAD_LINES.items())
    assert "IANA time zone" in report.rejected[1]["reason"]
    assert (report.total_rows, report.created, report.updated, report.rejected_count) == (
        20,
        18,
        0,
        2,
    )
    assert _candidates() == 0
    db.session.refresh(job)
    assert job.status == ImportStatus.UPLOADED and job.processed_rows == 0


def test_the_dry_run_counts_updates_of_known_candidates(app: Flask) -> None:
    upsert_candidate(db.session, {"email": "Ana.Lima@example.org"}, _now(app))
    db.session.commit()
    report = service.dry_run(db.session, _job(app, FIXTURE.read_bytes()))
    assert (report.created, report.updated) == (17, 1)


# --- the import ---------------------------------------------------------------------------


def test_good_rows_land_and_bad_rows_are_reported(app: Flask) -> None:
    job = _run(app, _job(app, FIXTURE.read_bytes(), tags=["spring-2026"]))
    assert job.status == ImportStatus.DONE and job.finished_at == _now(app)
    assert (job.processed_rows, job.created_count, job.updated_count, job.rejected_count) == (
        20,
        18,
        0,
        2,
    )
    assert [(e["line"], e["field"]) for e in job.errors] == list(BAD_LINES.items())
    assert _candidates() == 18
    chloe = db.session.scalar(select(Candidate).where(Candidate.email == "chloe.martin@example.fr"))
    assert chloe.first_name == "Chloé" and chloe.timezone == "Europe/Paris"
    assert chloe.recruiter_email == "jordan@acme.example.com"
    assert chloe.skills == ["figma", "prototyping", "research"]
    assert chloe.tag_names == ["spring-2026"]
    assert chloe.attributes == {"team": "Design"}
    assert db.session.scalar(select(Candidate).where(Candidate.email.like("tomas%"))) is None


def test_an_import_adds_tags_and_attributes_and_never_erases(app: Flask) -> None:
    upsert_candidate(
        db.session,
        {
            "email": "ana.lima@example.org",
            "first_name": "Ana",
            "role": "Staff Engineer",
            "tags": ["backend"],
            "attributes": {"github": "analima"},
        },
        _now(app),
    )
    db.session.commit()
    data = b"email,role,pool,team\nana.lima@example.org,,silver,Platform\n"
    job = _run(app, _job(app, data, mapping={"pool": "tags"}))
    assert (job.created_count, job.updated_count) == (0, 1)
    ana = db.session.scalar(select(Candidate))
    assert ana.role == "Staff Engineer"  # an empty cell leaves the stored value
    assert ana.tag_names == ["backend", "silver"]
    assert ana.attributes == {"github": "analima", "team": "Platform"}


def test_repeated_addresses_in_the_file_are_reported(app: Flask) -> None:
    data = (
        b"email,first_name\nana@example.org,Ana\nben@example.org,Ben\n"
        b"ANA@Example.org,Ana again\nben@example.org,Ben again\n"
    )
    job = _job(app, data)
    report = service.dry_run(db.session, job)
    assert [(e["line"], e["field"]) for e in report.rejected] == [(4, "email"), (5, "email")]
    assert "already on line 2" in report.rejected[0]["reason"]
    job = _run(app, job)
    assert (job.created_count, job.rejected_count) == (2, 2)
    assert (
        db.session.scalar(select(Candidate.first_name).where(Candidate.email == "ana@example.org"))
        == "Ana"
    )


def test_a_huge_cell_and_too_many_values_are_rejected_on_their_line(app: Flask) -> None:
    data = (
        "email,first_name,strengths\n"
        "ana@example.org,Ana,calm\n"
        f'ben@example.org,Ben,"{"x" * 200_000}"\n'  # over the csv module's field limit
        f"cleo@example.org,Cleo,{'y' * 20_000}\n"
        "dan@example.org,Dan,kind,extra,values\n"
        "eve@example.org,Eve,\n"
    ).encode()
    job = _job(app, data)
    report = service.dry_run(db.session, job)
    by_line = {e["line"]: e for e in report.rejected}
    assert sorted(by_line) == [3, 4, 5]
    assert "cannot be read" in by_line[3]["reason"]
    assert by_line[4]["field"] == "strengths" and "quote left open" in by_line[4]["reason"]
    assert "5 values but the header has 3" in by_line[5]["reason"]
    job = _run(app, job)
    assert (job.created_count, job.rejected_count) == (2, 3)


def test_progress_is_committed_after_each_batch(app: Flask, monkeypatch) -> None:
    job = _job(app, FIXTURE.read_bytes())
    seen: list[tuple[str, int, int]] = []
    write = service._write

    def spy(session, rows, now):
        # Read through another connection: only committed progress is visible there.
        with db.engine.connect() as conn:
            seen.append(
                tuple(
                    conn.execute(
                        text(
                            "SELECT status, processed_rows, created_count FROM imports"
                            " WHERE id = :id"
                        ),
                        {"id": job.id},
                    ).one()
                )
            )
        return write(session, rows, now)

    monkeypatch.setattr(service, "_write", spy)
    job = _run(app, job, batch=6)
    assert seen == [("running", 0, 0), ("running", 6, 5), ("running", 12, 11), ("running", 18, 16)]
    assert (job.processed_rows, job.created_count, job.rejected_count) == (20, 18, 2)


def test_a_stopped_import_resumes_after_its_last_batch(app: Flask) -> None:
    job = _job(app, FIXTURE.read_bytes())
    service.start(job)
    # As a killed worker leaves it: two committed batches of six rows.
    job.processed_rows, job.created_count, job.rejected_count = 12, 11, 1
    db.session.commit()
    job = service.run_import(db.session, job.id, _now(app), batch=6)
    assert (job.status, job.processed_rows, job.created_count, job.rejected_count) == (
        "done",
        20,
        18,
        2,
    )
    assert _candidates() == 7  # only lines 14-21 were written by this run (line 14 is bad)
    again = service.run_import(db.session, job.id, _now(app))
    assert again.created_count == 18 and _candidates() == 7


class Killed(BaseException):
    """What SIGKILL does to a worker, as far as the database can tell: nothing more is written."""


def test_an_import_whose_worker_died_is_handed_to_a_worker_again(
    sqlite_url, clock, redis_url, monkeypatch
) -> None:
    from datetime import timedelta

    from nurture.tasks import get_queue
    from nurture.tasks.scheduling import run_periodic
    from nurture.tasks.worker import SendWorker
    from tests.conftest import running_app

    with running_app(sqlite_url, clock, REDIS_URL=redis_url, IMPORT_BATCH_SIZE=6) as app:
        job = _job(app, FIXTURE.read_bytes())
        service.start(job)
        db.session.commit()
        job_id = job.id
        write, batches = service._write, []

        def dies_in_the_third_batch(session, rows, now):
            batches.append(len(rows))
            if len(batches) == 3:
                raise Killed
            return write(session, rows, now)

        monkeypatch.setattr(service, "_write", dies_in_the_third_batch)
        with pytest.raises(Killed):
            run_import_task(job_id)
        monkeypatch.setattr(service, "_write", write)
        db.session.rollback()
        stalled = db.session.get(Import, job_id)
        assert (stalled.status, stalled.processed_rows) == ("running", 12)
        queue = get_queue(app)
        # Still within the grace period: a slow worker is not second-guessed.
        clock.advance(timedelta(minutes=5))
        run_periodic(app, {})
        assert queue.count == 0
        clock.advance(timedelta(minutes=6))
        run_periodic(app, {})
        assert queue.count == 1
        run_periodic(app, {})  # claimed: a second pass does not enqueue it twice
        assert queue.count == 1
        SendWorker([queue], connection=queue.connection).work(burst=True)
        db.session.expire_all()
        done = db.session.get(Import, job_id)
        assert (done.status, done.processed_rows, done.created_count, done.rejected_count) == (
            "done",
            20,
            18,
            2,
        )
        assert _candidates() == 18


def test_a_row_the_database_refuses_is_rejected_alone(app: Flask, monkeypatch) -> None:
    save = service.save_candidate

    def flaky(session, data, now, **options):
        if data["email"] == "grace.kim@example.com":
            raise RuntimeError("the database said no")
        return save(session, data, now, **options)

    monkeypatch.setattr(service, "save_candidate", flaky)
    job = _run(app, _job(app, FIXTURE.read_bytes()), batch=10)
    assert job.status == ImportStatus.DONE
    assert (job.created_count, job.rejected_count) == (17, 3)
    assert {"line": 8, "field": "", "reason": "could not be saved: RuntimeError"} in job.errors
    assert _candidates() == 17


def test_an_unexpected_failure_ends_the_import_as_failed(app: Flask, monkeypatch) -> None:
    job = _job(app, FIXTURE.read_bytes())

    def broken(job):
        yield from []
        raise OSError("disk on fire")

    monkeypatch.setattr(service, "iter_rows", broken)
    job = _run(app, job)
    assert job.status == ImportStatus.FAILED and job.finished_at is not None
    assert "disk on fire" in job.errors[-1]["reason"]


def test_a_suppressed_address_stays_unmailable(app: Flask) -> None:
    now = _now(app)
    suppress(db.session, "ana.lima@example.org", "unsubscribed", now)
    ben, _ = upsert_candidate(db.session, {"email": "ben.okafor@example.com"}, now)
    ben.status = CandidateStatus.BOUNCED
    suppress(db.session, ben.email, "bounced", now)
    campaign = _tag_campaign("spring-2026", now)
    db.session.commit()
    _run(app, _job(app, FIXTURE.read_bytes(), tags=["spring-2026"]))
    status = dict(db.session.execute(select(Candidate.email, Candidate.status)).all())
    assert status["ana.lima@example.org"] == CandidateStatus.UNSUBSCRIBED
    assert status["ben.okafor@example.com"] == CandidateStatus.BOUNCED
    enrolled = set(
        db.session.scalars(
            select(Candidate.email).join(Enrolment).where(Enrolment.campaign_id == campaign.id)
        )
    )
    assert "ana.lima@example.org" not in enrolled and "ben.okafor@example.com" not in enrolled
    assert len(enrolled) == 16


def test_a_tag_entry_campaign_enrols_imported_tagged_candidates(app: Flask) -> None:
    now = _now(app)
    campaign = _tag_campaign("platform", now)
    # Already tagged before the import: not enrolled again by it.
    upsert_candidate(db.session, {"email": "ana.lima@example.org", "tags": ["platform"]}, now)
    db.session.commit()
    job = _job(app, FIXTURE.read_bytes(), mapping={"Team": "tags"})
    _run(app, job)
    enrolled = set(
        db.session.scalars(
            select(Candidate.email).join(Enrolment).where(Enrolment.campaign_id == campaign.id)
        )
    )
    assert enrolled == {
        "dmitri.volkov@example.net",
        "fatima.zahra@example.com",
        "pedro.alves@example.pt",
        "siobhan.kelly@example.ie",
    }


def test_the_rq_job_runs_the_import_and_is_safe_to_deliver_twice(app: Flask) -> None:
    job = _job(app, FIXTURE.read_bytes())
    service.start(job)
    db.session.commit()
    result = run_import_task(job.id)
    assert (result["status"], result["created"], result["rejected_count"]) == ("done", 18, 2)
    assert run_import_task(job.id)["created"] == 18
    assert _candidates() == 18


def test_the_command_line_prints_the_report(app: Flask) -> None:
    runner = app.test_cli_runner()
    checked = runner.invoke(args=["import", str(FIXTURE), "--dry-run"])
    assert checked.exit_code == 0, checked.output
    assert "would create 18, would update 0, rejected 2" in checked.output
    assert "line 6  E-mail: There must be something after the @-sign." in checked.output
    assert _candidates() == 0
    done = runner.invoke(
        args=["import", str(FIXTURE), "--tag", "Spring-2026", "--map", "LinkedIn="]
    )
    assert done.exit_code == 0, done.output
    assert "created 18, updated 0, rejected 2" in done.output
    assert "line 14  Timezone:" in done.output
    ana = db.session.scalar(select(Candidate).where(Candidate.email == "ana.lima@example.org"))
    assert ana.tag_names == ["spring-2026"] and "linkedin" not in ana.attributes
    bad = runner.invoke(args=["import", str(FIXTURE), "--map", "E-mail="])
    assert bad.exit_code != 0 and "map one column to Email" in bad.output


def test_the_import_on_every_database(database_url: str, clock) -> None:
    app = make_app(
        database_url, clock, REDIS_URL="redis://127.0.0.1:1/0", SMTP_URL="smtp://127.0.0.1:1"
    )
    with app.app_context():
        try:
            campaign = _tag_campaign("platform", _now(app))
            upsert_candidate(
                db.session,
                {
                    "email": "ana.lima@example.org",
                    "tags": ["alumni"],
                    "attributes": {"github": "analima"},
                },
                _now(app),
            )
            db.session.commit()
            job = _job(app, FIXTURE.read_bytes(), mapping={"Team": "tags"}, tags=["spring"])
            assert service.dry_run(db.session, job).as_dict()["updated"] == 1
            job = _run(app, job, batch=7)
            assert (job.status, job.created_count, job.updated_count, job.rejected_count) == (
                "done",
                17,
                1,
                2,
            )
            assert [e["line"] for e in job.errors] == [6, 14]
            ana = db.session.scalar(
                select(Candidate).where(Candidate.email == "ana.lima@example.org")
            )
            assert ana.tag_names == ["alumni", "platform", "spring"]
            assert ana.attributes["github"] == "analima"
            assert (
                db.session.scalar(
                    select(func.count())
                    .select_from(Enrolment)
                    .where(Enrolment.campaign_id == campaign.id)
                )
                == 5
            )
        finally:
            db.session.remove()
            db.engine.dispose()


def _tag_campaign(tag: str, now) -> Campaign:
    campaign = Campaign(
        name=f"{tag} drip",
        status=CampaignStatus.ACTIVE,
        entry_type=EntryType.TAG,
        entry_value=tag,
        created_at=now,
        updated_at=now,
        steps=[
            Step(position=0, delay_seconds=3600, delay="PT1H", template="talent_network_invite")
        ],
    )
    db.session.add(campaign)
    db.session.flush()
    return campaign
