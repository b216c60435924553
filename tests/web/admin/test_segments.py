"""The segment builder: rows with a live count, errors at the rule, JSON for nesting, no-JS too."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select

from nurture.core.audience.engagement import growth
from nurture.extensions import db
from nurture.models import Candidate, Segment, Tag
from nurture.models.candidates import candidate_tags
from tests.web.admin.conftest import PASSWORD, login, screenshot


def _people(live_app) -> None:
    now = live_app.extensions["nurture.clock"].now()
    rows = [
        {
            "id": i,
            "email": f"p{i}@example.org",
            "first_name": f"Person{i}",
            "last_name": "Example",
            "role": "Backend engineer" if i % 2 else "Designer",
            "stage": "onsite" if i % 3 == 0 else "screen",
            "last_opened_at": now - timedelta(days=i) if i % 4 else None,
            "engagement_points": float(i % 5) * growth(now),  # a score of i % 5 now
            "created_at": now,
            "updated_at": now,
        }
        for i in range(1, 41)
    ]
    db.session.execute(insert(Candidate), rows)
    tag = Tag(name="silver-medalist")
    db.session.add(tag)
    db.session.flush()
    db.session.execute(
        insert(candidate_tags), [{"candidate_id": i, "tag_id": tag.id} for i in range(1, 41, 3)]
    )
    db.session.commit()


def _count(page) -> str:
    return page.locator("#seg-count").inner_text()


def test_build_a_segment_with_a_live_count(page, live_app) -> None:
    """Add conditions, see the count move, fix an error at its row, save, then nest in JSON."""
    _people(live_app)
    login(page, "editor")
    page.click("nav >> text=Segments")
    page.click("text=New segment")
    assert _count(page) == "40"  # no conditions yet: everyone

    page.fill("#name", "Engaged backend")
    page.click("#seg-add")
    page.fill("#c-0-value", "Backend engineer")
    page.wait_for_function("() => document.querySelector('#seg-count').textContent === '20'")
    page.click("#seg-add")
    page.select_option("#c-1-kind", "opened")
    page.fill("#c-1-value", "20")
    # i odd, opened (i % 4 != 0) within 20 days (i <= 20): 1,3,5,...,19 → 10
    page.wait_for_function("() => document.querySelector('#seg-count').textContent === '10'")
    assert page.locator("#seg-sample tbody tr").count() == 10
    assert "Person19" in page.locator("#seg-sample tbody tr").first.inner_text()

    page.click("#seg-add")
    page.select_option("#c-2-kind", "score")
    page.fill("#c-2-value", "lots")
    error = page.locator(".seg-row").nth(2).locator("[data-row-error]")
    error.wait_for(state="visible")
    assert "must be a number" in error.inner_text()
    screenshot(page, "segments-builder-errors")
    page.click("button[value='save']")
    # Saving is refused, the error stays at its row and nothing is stored.
    assert "must be a number" in page.locator(".seg-row.has-error .error").inner_text()
    assert db.session.scalar(select(Segment)) is None

    page.fill("#c-2-value", "2")
    page.wait_for_function("() => document.querySelector('#seg-count').textContent === '6'")
    screenshot(page, "segments-builder")
    page.click("button[value='save']")
    assert "saved" in page.locator(".flash.success").inner_text()
    saved = db.session.scalar(select(Segment))
    assert saved.rules == {
        "all": [
            {"field": "role", "op": "eq", "value": "Backend engineer"},
            {"opened": {"within_days": 20}},
            {"engagement_score": {"gte": 2.0}},
        ]
    }

    # Nesting needs JSON; a bad operator is named with its path.
    page.click("text=Edit as JSON")
    page.fill(
        "#rules_json",
        '{"any": [{"tag": "silver-medalist"}, {"not": {"field": "stage", "op": "equals",'
        ' "value": "screen"}}]}',
    )
    general = page.locator("#seg-general")
    general.wait_for(state="visible")
    assert "rules.any[1].not.op: unknown operator 'equals'" in general.inner_text()
    page.fill(
        "#rules_json",
        '{"any": [{"tag": "silver-medalist"}, {"not": {"field": "stage", "op": "eq",'
        ' "value": "screen"}}]}',
    )
    # silver medalists (1, 4, ..., 40: 14) or onsite (3, 6, ..., 39: 13), never both
    page.wait_for_function("() => document.querySelector('#seg-count').textContent === '27'")
    page.click("button[value='save']")
    assert "saved" in page.locator(".flash.success").inner_text()
    db.session.expire_all()
    assert db.session.scalar(select(Segment)).rules["any"][0] == {"tag": "silver-medalist"}
    assert page.locator("#rules_json").count() == 1  # nested rules reopen as JSON

    page.click("nav >> text=Segments")
    assert "Engaged backend" in page.locator("table").inner_text()


def test_the_builder_works_without_javascript(browser, live_server, live_app) -> None:
    """Every button posts the form: add, remove, preview and save need no script."""
    _people(live_app)
    context = browser.new_context(viewport={"width": 390, "height": 900},
                                  base_url=live_server.url, java_script_enabled=False)  # fmt: skip
    page = context.new_page()
    page.goto("/admin/login")
    page.fill("input[name=email]", "editor@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto("/admin/segments/new")
    page.fill("#name", "Designers on site")
    page.click("#seg-add")
    page.fill("#c-0-value", "Designer")
    page.click("#seg-add")
    page.select_option("#c-1-field", "stage")
    page.fill("#c-1-value", "onsite")
    page.click("text=Update count")
    assert _count(page) == "6"  # even and divisible by 3: 6, 12, ..., 36
    page.click("#seg-add")
    page.click("button[value='remove:2']")
    assert page.locator(".seg-row").count() == 2
    page.click("button[value='save']")
    assert "saved" in page.locator(".flash.success").inner_text()
    context.close()


def test_viewers_see_but_cannot_save(page, live_app) -> None:
    """A viewer can try rules but gets no Save button."""
    login(page, "viewer")
    page.goto("/admin/segments/new")
    assert page.locator("button[value='save']").count() == 0
    assert page.locator("#seg-count").count() == 1
