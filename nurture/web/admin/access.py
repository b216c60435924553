"""Who may see what in the admin."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import abort, redirect, request, url_for
from flask_login import current_user

from nurture.core.accounts.users import user_for_session
from nurture.extensions import db, login_manager
from nurture.models import User

login_manager.login_view = "admin.auth.login"


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    """The user of a session cookie, unless it was revoked (sign-out, new password, deactivated)."""
    return user_for_session(db.session, user_id)


def role_required(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Browsers that are not signed in go to the login page; the wrong role gets 403."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return redirect(url_for("admin.auth.login", next=request.full_path.rstrip("?")))
            if not current_user.has_role(role):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def safe_next(target: str | None) -> str:
    r"""Only admin paths of this site are followed after login: no open redirect.

    Browsers drop tabs and newlines from a URL and read ``\`` as ``/``, and some proxies decode
    ``%2F``; so ``/\t/evil.com``, ``/%2F/evil.com`` or ``/\evil.com`` would lead off site. A
    target with any of them, as sent or once decoded, is refused.
    """
    fallback = url_for("admin.dashboard.dashboard")
    if not target or len(target) > 2000:
        return fallback
    for form in (target, unquote(target)):
        if "\\" in form or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in form):
            return fallback
        if form.startswith("//") or not (form == "/admin" or form.startswith("/admin/")):
            return fallback
        parts = urlsplit(form)
        if parts.scheme or parts.netloc:
            return fallback
    return target
