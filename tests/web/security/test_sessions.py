"""A copied session cookie stops working at sign-out, at a password change and when an admin
deactivates the account; sign-in is throttled per client, alike for accounts that exist and
those that do not, and nobody can lock a colleague out."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from nurture.core.accounts import users as user_service
from nurture.extensions import db
from nurture.models import User
from tests.web.security.conftest import PASSWORD, csrf_of, session_cookie, sign_in, with_cookie


def opens_candidates(client) -> bool:
    answer = client.get("/admin/candidates")
    if answer.status_code == 302:
        assert "/admin/login" in answer.headers["Location"]
        return False
    assert answer.status_code == 200
    return True


def post(client, path: str, **data):
    token = csrf_of(client.get("/admin/account").text)
    return client.post(path, data={"csrf_token": token, **data})


def test_a_cookie_copied_before_sign_out_is_refused_after_it(app: Flask, people) -> None:
    browser = sign_in(app, "viewer")
    stolen = session_cookie(browser)
    assert opens_candidates(with_cookie(app, stolen))
    assert post(browser, "/admin/logout").status_code == 302
    assert not opens_candidates(with_cookie(app, stolen))
    assert not opens_candidates(browser)
    assert opens_candidates(sign_in(app, "viewer"))  # signing in again works


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app: Flask, people) -> None:
    laptop, phone = sign_in(app, "editor"), sign_in(app, "editor")
    stolen = session_cookie(phone)
    changed = post(
        laptop,
        "/admin/account",
        current_password=PASSWORD,
        new_password="a brand new passphrase",
        confirm="a brand new passphrase",
    )
    assert changed.status_code == 302
    assert opens_candidates(laptop)
    assert not opens_candidates(phone)
    assert not opens_candidates(with_cookie(app, stolen))
    wrong = post(
        laptop, "/admin/account", current_password="nope", new_password="x" * 12, confirm="x" * 12
    )
    assert wrong.status_code == 422 and "is not your current password" in wrong.text


def test_deactivating_a_user_ends_their_sessions_at_once(app: Flask, people) -> None:
    viewer = sign_in(app, "viewer")
    stolen = session_cookie(viewer)
    admin = sign_in(app, "admin")
    target = db.session.scalar(select(User).where(User.email == "viewer@example.com"))
    answer = post(admin, f"/admin/users/{target.id}", **{f"u{target.id}-role": "viewer"})
    assert answer.status_code == 302
    db.session.refresh(target)
    assert target.active is False
    assert not opens_candidates(viewer)
    assert not opens_candidates(with_cookie(app, stolen))


def test_a_cookie_of_the_old_form_or_a_guessed_nonce_is_refused(app: Flask, people) -> None:
    user = db.session.scalar(select(User).where(User.email == "admin@example.com"))
    for forged in (str(user.id), f"{user.id}:", f"{user.id}:{'0' * 32}", "9" * 40 + ":x"):
        client = app.test_client()
        with client.session_transaction() as session:
            session["_user_id"] = forged
        assert not opens_candidates(client), forged


def test_the_cli_sets_a_password_and_signs_the_user_out(app: Flask, people) -> None:
    browser = sign_in(app, "viewer")
    result = app.test_cli_runner().invoke(
        args=["users", "set-password", "viewer@example.com", "--password", "another long one"]
    )
    assert result.exit_code == 0, result.output
    assert not opens_candidates(browser)


# --- sign-in throttling ----------------------------------------------------------------------


def attempt(app: Flask, email: str, password: str, address: str = "203.0.113.7"):
    client = app.test_client()
    token = csrf_of(client.get("/admin/login").text)
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )


def test_unknown_and_known_addresses_get_the_same_answers(app: Flask, people) -> None:
    """Five wrong tries, then the throttle: word for word the same whether the account exists."""
    pages = {}
    for email in ("editor@example.com", "nobody@example.com"):
        answers = [attempt(app, email, "wrong password") for _ in range(6)]
        pages[email] = [(a.status_code, _alert(a.text)) for a in answers]
    assert pages["editor@example.com"] == pages["nobody@example.com"]
    assert pages["nobody@example.com"][0] == (200, user_service_wrong())
    assert pages["nobody@example.com"][5][0] == 429
    assert "Too many attempts from here" in pages["nobody@example.com"][5][1]


def user_service_wrong() -> str:
    from nurture.web.admin.auth.views import WRONG

    return WRONG


def _alert(html: str) -> str:
    import re

    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', html)
    return found[1] if found else ""


def test_a_wrong_password_costs_as_long_for_an_unknown_address(app: Flask, people) -> None:
    now = app.extensions["nurture.clock"].now()

    def cost(email: str, client: str) -> float:
        started = time.perf_counter()
        user_service.authenticate(db.session, email, "wrong", now, client)
        db.session.rollback()
        return time.perf_counter() - started

    known = [cost("editor@example.com", f"198.51.100.{n}") for n in range(7)]
    unknown = [cost("nobody@example.com", f"198.51.100.{n + 100}") for n in range(7)]
    ratio = statistics.median(known) / statistics.median(unknown)
    assert 0.6 < ratio < 1.6, (known, unknown)


def test_an_attacker_cannot_lock_a_colleague_out(app: Flask, people) -> None:
    for _ in range(10):
        attempt(app, "admin@example.com", "guess", address="192.0.2.66")
    assert attempt(app, "admin@example.com", PASSWORD, address="192.0.2.66").status_code == 429
    # The admin, from their own machine, signs in as usual.
    assert attempt(app, "admin@example.com", PASSWORD, address="198.51.100.5").status_code == 302


def test_one_client_spraying_many_addresses_is_throttled(app: Flask, people) -> None:
    for n in range(user_service.CLIENT_FAILURES):
        attempt(app, f"person{n}@example.com", "Winter2026!", address="192.0.2.99")
    answer = attempt(app, "editor@example.com", PASSWORD, address="192.0.2.99")
    assert answer.status_code == 429
    assert attempt(app, "editor@example.com", PASSWORD, address="192.0.2.100").status_code == 302


def test_the_throttle_lifts_after_its_time(app: Flask, people, clock) -> None:
    for _ in range(user_service.PAIR_FAILURES):
        attempt(app, "viewer@example.com", "guess")
    assert attempt(app, "viewer@example.com", PASSWORD).status_code == 429
    clock.advance(user_service.LOCK_FOR + timedelta(seconds=1))
    assert attempt(app, "viewer@example.com", PASSWORD).status_code == 302


def test_ipv6_clients_are_counted_by_their_64_prefix() -> None:
    key = user_service.client_key
    assert key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert key("2001:db8:1:3::1") != key("2001:db8:1:2::1")
    assert key("::ffff:192.0.2.1") == key("192.0.2.1") == "192.0.2.1"
