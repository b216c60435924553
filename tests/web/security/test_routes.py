"""Every route × every caller, from the app's own URL map: each endpoint has a decision in ACCESS
(the least role it needs), and each caller gets what that decision says. A new route without a
decision fails this file, so access is never left to chance.

Callers: anonymous; a signed-in viewer, editor and admin (admin pages); an API token of each role
(the API). Too little → 403; enough → anything but 401/403 or the login page; anonymous → the
login page (admin) or 401 (API). Cookies never open the API, tokens never open the admin.
"""

from __future__ import annotations

import re

from flask import Flask

from nurture.models import Role
from nurture.models.users import ROLE_RANK
from tests.web.security.conftest import ROLES, as_user

PUBLIC = "public"  # anyone, no account: sign-in, candidates' mail links, the OpenAPI document
SIGNED = "signed"  # anyone holding the shared secret: the HMAC-signed webhooks
V, E, A = Role.VIEWER, Role.EDITOR, Role.ADMIN

# endpoint → the least role it needs. Keep it in step with the decorators: this table is the
# access policy written down, and the test checks the app against it.
ACCESS: dict[str, str] = {
    "admin.auth.login": PUBLIC,
    "admin.auth.logout": PUBLIC,  # signing out needs no account; it ends one if there is
    "admin.auth.account": V,
    "admin.dashboard.dashboard": V,
    "admin.static": PUBLIC,
    "static": PUBLIC,
    # candidates
    "admin.candidates.candidates": V,
    "admin.candidates.candidate": V,
    "admin.candidates.candidates_export": V,
    "admin.candidates.candidate_edit": E,
    "admin.candidates.candidate_enrol": E,
    "admin.candidates.candidate_hire": E,
    "admin.candidates.candidate_tag_add": E,
    "admin.candidates.candidate_tag_remove": E,
    "admin.candidates.candidates_bulk_tag": E,
    "admin.candidates.candidates_bulk": E,
    "admin.candidates.candidate_erase": A,
    # campaigns and broadcasts
    "admin.campaigns.campaigns": V,
    "admin.campaigns.campaign": V,
    "admin.campaigns.campaign_new": E,
    "admin.campaigns.campaign_edit": E,
    "admin.campaigns.campaign_status": E,
    "admin.broadcasts.broadcasts": V,
    "admin.broadcasts.broadcast": V,
    "admin.broadcasts.broadcast_new": E,
    "admin.broadcasts.broadcast_progress": V,
    # segments: reading and previewing is a viewer's, saving an editor's (inside the view)
    "admin.segments.segments": V,
    "admin.segments.new_segment": V,
    "admin.segments.segment": V,
    "admin.segments.segment_preview": V,
    "admin.segments.segment_values": V,
    "admin.segments.stages": V,
    "admin.segments.stages_change": E,
    # job alerts
    "admin.openings.jobs": V,
    "admin.openings.job": V,
    "admin.openings.job_create": E,
    "admin.openings.job_add": E,
    "admin.openings.job_match": E,
    "admin.openings.job_send": E,
    "admin.openings.job_progress": V,
    # templates: viewers read and preview what is saved; editors write
    "admin.email_templates.templates": V,
    "admin.email_templates.edit_template": V,
    "admin.email_templates.starter_template": V,
    "admin.email_templates.preview_template": V,
    "admin.email_templates.template_candidates": V,
    "admin.email_templates.open_template": V,
    "admin.email_templates.thumbnail": V,
    # a mail as it goes out, for a real candidate (the confirm pages); a test send of it
    "admin.email_templates.mail_frame": V,
    "admin.email_templates.mail_test": E,
    "admin.email_templates.new_template": E,
    "admin.email_templates.create_template": E,
    "admin.email_templates.update_template": E,
    "admin.email_templates.delete_template": E,
    "admin.email_templates.duplicate_starter": E,
    "admin.email_templates.test_starter": E,
    "admin.email_templates.update_starter": E,
    "admin.email_templates.reset_starter": E,
    "admin.email_templates.restore_version": E,
    # a template in each language: viewers read and preview, editors write and test-send
    "admin.translations.template_languages": V,
    "admin.translations.edit_translation": V,
    "admin.translations.starter_languages": V,
    "admin.translations.starter_translation": V,
    "admin.translations.add_language": E,
    "admin.translations.save_translation": E,
    "admin.translations.delete_translation": E,
    "admin.translations.test_starter": E,
    # imports, suppressions, captured mail (live unsubscribe links: not for viewers)
    "admin.imports.imports": E,
    "admin.imports.import_upload": E,
    "admin.imports.import_detail": E,
    "admin.imports.import_mapping": E,
    "admin.imports.import_check": E,
    "admin.imports.import_start": E,
    "admin.imports.import_progress": E,
    "admin.imports.import_rejected": E,
    "admin.suppressions.suppressions": V,
    "admin.suppressions.suppressions_add": E,
    "admin.mailbox.mailbox_list": E,
    "admin.mailbox.mailbox_message": E,
    # users and tokens
    "admin.users.users": A,
    "admin.users.create_user": A,
    "admin.users.update_user": A,
    "admin.users.create_token": A,
    "admin.users.revoke_token": A,
    # operators
    "admin.system.system": A,
    "admin.system.retry_jobs": A,
    "admin.system.static": PUBLIC,
    "ops.healthz": PUBLIC,
    "ops.readyz": PUBLIC,  # names what is down, never a host or a password
    # a bearer token or a private client address (tests/web/ops/test_metrics.py); here, loopback
    "ops.metrics": PUBLIC,
    # replies, referrals, rejection promptness, webhooks to the ATS
    "admin.replies.replies": V,
    "admin.replies.reply": V,
    "admin.replies.reply_forward": E,
    "admin.replies.reply_handled": E,
    "admin.replies.reply_reopen": E,
    "admin.referrals.referrals": V,
    "admin.referrals.referral_link": E,
    "admin.promptness.promptness": V,
    "admin.promptness.promptness_target": A,
    # feedback both ways, talent-pool health, A/B subjects
    "admin.feedback.feedback": V,
    "admin.pool.pool": V,
    "admin.pool.pool_policy": A,
    "admin.webhooks.webhooks": A,
    "admin.webhooks.delivery": A,
    "admin.webhooks.delivery_retry": A,
    "admin.webhooks.endpoint_create": A,
    "admin.webhooks.endpoint_delete": A,
    "admin.webhooks.endpoint_test": A,
    "admin.webhooks.endpoint_toggle": A,
    # the API
    "api.openapi": PUBLIC,
    "api.ats_event": SIGNED,
    "api.bounce_webhook": SIGNED,
    "api.get_candidate": V,
    "api.create_candidate": E,
    "api.import_candidates": E,
    "api.get_import": E,
    "api.erase_candidate": A,
    "api.get_campaign": V,
    "api.campaign_stats": V,
    "api.create_campaign": E,
    "api.activate_campaign": E,
    "api.pause_campaign": E,
    "api.get_broadcast": V,
    "api.create_broadcast": E,
    "api.list_segments": V,
    "api.get_segment": V,
    "api.count_segment": V,
    "api.segment_members": V,
    "api.preview_segment": V,
    "api.create_segment": E,
    "api.update_segment": E,
    "api.get_opening": V,
    "api.opening_matches": V,
    "api.create_opening": E,
    "api.add_match": E,
    "api.include_match": E,
    "api.exclude_match": E,
    "api.approve_opening": E,
    "api.check_suppression": V,
    "api.suppression_counts": V,
    "api.add_suppressions": E,
    "api.list_replies": V,
    "api.get_reply": V,
    "api.reply_handled": E,
    "api.reply_reopen": E,
    "api.list_referrals": V,
    "api.referral_stats": V,
    "api.referral_link": E,
    "api.promptness": V,
    "api.promptness_target": A,
    "api.metrics": V,
    "api.list_endpoints": A,
    "api.create_endpoint": A,
    "api.update_endpoint": A,
    "api.delete_endpoint": A,
    "api.test_endpoint": A,
    "api.list_deliveries": A,
    "api.retry_delivery": A,
    "api.feedback": V,
    "api.missing_strengths": V,
    "api.pool": V,
    "api.campaign_ab_tests": V,
    "admin.abtests.ab_tests": V,
    "api.pool_policy": A,
    # candidates' mail links: the signed token in the URL is the authority (the open pixel and
    # the click redirect are answered ahead of Flask, by web/public/hits.py: not in the URL map)
    **{
        f"tracking.{name}": PUBLIC
        for name in (
            "unsubscribe_page",
            "unsubscribe",
            "unsubscribe_reason",
            "resubscribe",
            "preferences",
            "save_topics",
            "pause",
            "unpause",
            "tracking",
            "language",
            "stay",
            "download",
            "delete_page",
            "delete",
            "rating",
            "rating_answer",
            "reconsent_page",
            "referrals.refer_page",
            "referrals.refer",
            "referrals.consent_page",
            "referrals.consent_answer",
            "referrals.static",
            "static",
            "brand_css",
        )
    },
}

VALUES = {"name": "rejection_followup", "filename": "admin.css", "token": "x", "key": "x"}
# Where the role a view asks for depends on what is posted: post what the least role may.
FORMS = {"admin.email_templates.preview_template": {"starter": "rejection_followup"}}


def routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, a concrete path) for every rule and method of the app."""
    found = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<int:\w+>", "1", rule.rule)
        path = re.sub(r"<any\(([^,)]+)[^>]*>", lambda m: m[1].strip(), path)
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: VALUES.get(m[1], "x"), path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, path))
    return found


def to_login(answer) -> bool:
    return answer.status_code == 302 and "/admin/login" in answer.headers.get("Location", "")


# The readiness probe answers 503 naming what is down: this app has no Redis or SMTP server.
ANSWERS_503 = {"/readyz"}


def call(client, method: str, path: str, **kwargs):
    answer = client.open(path, method=method, **kwargs)
    answer.get_data()  # read it all, so a streamed file is closed
    answer.close()
    expected_503 = path in ANSWERS_503 and answer.status_code == 503
    assert answer.status_code < 500 or expected_503, (method, path, answer.status_code)
    return answer


def test_every_endpoint_has_an_access_decision(app: Flask) -> None:
    endpoints = {endpoint for endpoint, _, _ in routes(app)}
    assert sorted(endpoints - set(ACCESS)) == [], "new routes need a line in ACCESS"
    assert sorted(set(ACCESS) - endpoints) == [], "ACCESS names routes that are gone"


def test_each_caller_gets_what_the_table_says(csrf_off: Flask, people) -> None:
    """CSRF is off here (its own test covers it), so that every POST reaches its role check."""
    app = csrf_off
    app.config["BOUNCE_WEBHOOK_SECRET"] = "bounce-secret"
    checked = 0
    for endpoint, method, path in routes(app):
        need = ACCESS[endpoint]
        api = path.startswith("/api/")
        anonymous = call(app.test_client(), method, path, json={} if api else None)
        if need == PUBLIC:
            assert anonymous.status_code not in (401, 403), path
            # Signing out leads to the sign-in page, for anyone; nothing else public does.
            assert not to_login(anonymous) or endpoint == "admin.auth.logout", path
            continue
        if need == SIGNED:
            assert anonymous.status_code == 401, (path, anonymous.status_code)
            assert anonymous.json["error"]["code"] == "bad_signature"
            continue
        if api:
            assert anonymous.status_code == 401, (method, path, anonymous.status_code)
            assert anonymous.json["error"]["code"] == "unauthorized"
        else:
            assert to_login(anonymous), (method, path, anonymous.status_code)
        for role in ROLES:
            enough = ROLE_RANK[Role(role)] >= ROLE_RANK[Role(need)]
            if api:
                headers = {"Authorization": f"Bearer {people[role]}"}
                answer = call(app.test_client(), method, path, headers=headers, json={})
                # A signed-in browser session is no credential for the API.
                cookie = call(as_user(app, role), method, path, json={})
                assert cookie.status_code == 401, (method, path, role)
            else:
                answer = call(as_user(app, role), method, path, data=FORMS.get(endpoint))
                # An API token is no credential for the admin.
                token = {"Authorization": f"Bearer {people[role]}"}
                assert to_login(call(app.test_client(), method, path, headers=token)), path
            if enough:
                assert answer.status_code not in (401, 403), (
                    method,
                    path,
                    role,
                    answer.status_code,
                )
                assert not to_login(answer), (method, path, role)
            else:
                assert answer.status_code == 403, (method, path, role, answer.status_code)
            checked += 1
    assert checked > 250  # (route, method, role) triples


def test_a_viewer_sees_no_mailbox_in_the_menu(app: Flask, people) -> None:
    viewer = as_user(app, "viewer").get("/admin/").text
    editor = as_user(app, "editor").get("/admin/").text
    assert "/admin/mailbox" not in viewer and "/admin/mailbox" in editor
