"""Webhooks in Chromium: an admin adds an endpoint (a bad URL is named), sees its secret once,
sends a test event that fails at the receiver, reads the failure in the log, retries it, and
sees it delivered. Editors do not see the page."""

from __future__ import annotations

import hashlib
import hmac
import json

from playwright.sync_api import expect

from nurture.tasks.scheduling import run_periodic
from tests.support.receiver import Receiver
from tests.support.workers import drain
from tests.web.admin.conftest import login, screenshot


def test_add_an_endpoint_read_the_log_and_retry(page, live_app, live_server) -> None:
    with Receiver([500] * 20) as receiver:
        login(page, "admin")
        page.click("nav >> text=Webhooks")
        page.fill("#url", "ats.example.com/hooks")
        page.click("button:has-text('Add endpoint')")
        expect(page.locator("#add-endpoint .error")).to_contain_text("http:// or https://")

        page.fill("#url", receiver.url)
        page.fill("#description", "Greenhouse")
        page.check("input[value='candidate.referred']")
        page.check("input[value='candidate.unsubscribed']")
        page.click("button:has-text('Add endpoint')")
        expect(page.locator(".flash.success")).to_contain_text("Endpoint added")
        secret = page.locator("#new-secret input").input_value()
        assert len(secret) >= 32
        endpoint = page.locator("[data-endpoint]").first
        expect(endpoint).to_contain_text("candidate.referred, candidate.unsubscribed")

        page.click("button:has-text('Send a test event')")
        expect(page.locator("#new-secret")).to_have_count(0)  # shown once, never again
        row = page.locator("[data-delivery]").first
        expect(row).to_contain_text("webhook.test")
        expect(row).to_contain_text("pending")

        run_periodic(live_app, {})
        drain(live_app)
        page.reload()
        row = page.locator("[data-delivery]").first
        expect(row).to_contain_text("HTTP 500")
        expect(row).to_contain_text("attempt 1 of 12")
        screenshot(page, "admin-webhooks")

        receiver.script = []  # the receiver is fixed
        row.locator("button:has-text('Retry now')").click()
        expect(page.locator(".flash.success")).to_contain_text("goes again")
        run_periodic(live_app, {})
        drain(live_app)
        page.reload()
        row = page.locator("[data-delivery]").first
        expect(row).to_contain_text("delivered")
        row.locator("a").first.click()
        expect(page.locator("pre.source").first).to_contain_text('"type": "webhook.test"')

        last = receiver.requests[-1]
        expected = "sha256=" + hmac.new(secret.encode(), last.body, hashlib.sha256).hexdigest()
        assert last.headers["X-Nurture-Signature"] == expected
        assert json.loads(last.body)["data"] == {"hello": "from nurture"}

    page.click("button:has-text('Sign out')")
    login(page, "editor")
    expect(page.locator("nav >> text=Webhooks")).to_have_count(0)
    assert page.goto("/admin/webhooks").status == 403
