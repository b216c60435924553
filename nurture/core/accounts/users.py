"""Admin users and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from nurture.core.addresses import normalise_email
from nurture.core.errors import Conflict, ValidationError
from nurture.models import ApiToken, Role, User


def create_user(
    session: Session, email: str, password: str, role: str, now: datetime, name: str = ""
) -> User:
    """A new user with a scrypt-hashed password."""
    errors: dict[str, str] = {}
    try:
        email = normalise_email(email)
    except ValidationError as exc:
        errors.update(exc.fields)
    if len(password or "") < 10:
        errors["password"] = "must be at least 10 characters"
    if role not in set(Role):
        errors["role"] = f"must be one of {', '.join(Role)}"
    if errors:
        raise ValidationError("the user is not valid", errors)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with the address {email} exists already")
    user = User(
        email=email,
        name=name,
        password_hash=generate_password_hash(password, method="scrypt"),
        role=role,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def check_password(user: User | None, password: str) -> bool:
    """True when the password is the user's (constant time; False for no user)."""
    if user is None or not user.password_hash:
        return False
    return check_password_hash(user.password_hash, password)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, name: str, now: datetime) -> str:
    """A new API token for ``user``; the plain token is returned once and only its hash kept."""
    token = "nrt_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, name=name, token_hash=_digest(token), created_at=now))
    session.flush()
    return token


def user_for_token(session: Session, token: str, now: datetime) -> User | None:
    """The active user a bearer token belongs to, or None."""
    api_token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
    if api_token is None or not api_token.user.active:
        return None
    api_token.last_used_at = now
    return api_token.user


MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
# Checked against when the email is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("nurture-timing-equaliser", method="scrypt")


class LoginLocked(Exception):
    """Too many failed sign-ins: the account waits until ``until``."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"locked until {until.isoformat()}")
        self.until = until


def authenticate(session: Session, email: str, password: str, now: datetime) -> User | None:
    """The user whose credentials these are, counting failures and locking after too many."""
    user = session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if user.locked_until is not None and user.locked_until > now:
        raise LoginLocked(user.locked_until)
    if user.active and check_password(user, password or ""):
        user.failed_logins = 0
        user.locked_until = None
        return user
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILURES:
        user.locked_until = now + LOCK_FOR
        user.failed_logins = 0
    return None


def _admins_left(session: Session, excluding: User) -> int:
    return session.scalar(
        select(func.count()).where(
            User.role == Role.ADMIN, User.active.is_(True), User.id != excluding.id
        )
    )


def update_user(session: Session, user: User, role: str, active: bool) -> User:
    """Change a user's role or deactivate them, never leaving the team without an admin."""
    if role not in set(Role):
        raise ValidationError("unknown role", {"role": f"must be one of {', '.join(Role)}"})
    losing_admin = user.role == Role.ADMIN and (role != Role.ADMIN or not active)
    if losing_admin and _admins_left(session, user) == 0:
        raise Conflict("nurture needs at least one active admin; promote someone else first")
    user.role = role
    user.active = active
    return user


def revoke_token(session: Session, token_id: int) -> ApiToken | None:
    """Delete an API token; callers using it get 401 from then on."""
    token = session.get(ApiToken, token_id)
    if token is not None:
        session.delete(token)
    return token
