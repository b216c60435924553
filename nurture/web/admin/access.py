"""Who may see what in the admin."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

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
    """Only same-site paths are followed after login: no open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("admin.dashboard.dashboard")
