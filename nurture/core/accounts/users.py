"""Admin users and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from nurture.core import settings as core_settings
from nurture.core.addresses import normalise_email
from nurture.core.errors import Conflict, ValidationError
from nurture.models import ApiToken, LoginThrottle, Role, User

MIN_PASSWORD = 10


def create_user(
    session: Session, email: str, password: str, role: str, now: datetime, name: str = ""
) -> User:
    """A new user with a scrypt-hashed password."""
    errors: dict[str, str] = {}
    try:
        email = normalise_email(email)
    except ValidationError as exc:
        errors.update(exc.fields)
    if len(password or "") < MIN_PASSWORD:
        errors["password"] = f"must be at least {MIN_PASSWORD} characters"
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
        session_nonce=secrets.token_hex(16),
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


# Sign-in throttling. Failures count per (account, client) and per client, never per account
# alone: an attacker who knows a colleague's address can slow only themselves, not lock the
# colleague out. Unknown and known addresses are counted, timed and answered alike.
PAIR_FAILURES = 5  # wrong passwords for one address from one client
CLIENT_FAILURES = 30  # wrong passwords from one client over all addresses (password spraying)
THROTTLE_WINDOW = timedelta(minutes=15)
LOCK_FOR = timedelta(minutes=15)
# Checked against when the email is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("nurture-timing-equaliser", method="scrypt")


class LoginThrottled(Exception):
    """Too many failed sign-ins from this client (for this address, or at all) until ``until``."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"throttled until {until.isoformat()}")
        self.until = until


def client_key(address: str) -> str:
    """The part of a client address that throttling counts: an IPv4 address, an IPv6 /64."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return (address or "unknown")[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _throttle_keys(email: str, client: str) -> tuple[str, str]:
    """Keyed hashes of (address, client) and of client: the table holds neither in clear."""
    pepper = str(core_settings.current().get("SECRET_KEY") or "").encode()

    def digest(text: str) -> str:
        return hmac.new(pepper, text.encode(), hashlib.sha256).hexdigest()[:40]

    client = client_key(client)
    return f"pair:{digest(email + chr(0) + client)}", f"client:{digest(client)}"


def authenticate(
    session: Session, email: str, password: str, now: datetime, client: str = ""
) -> User | None:
    """The active user whose credentials these are, or None; LoginThrottled when this client
    has failed too often (for this address, or over all addresses) in the last while.

    Every failure counts against the client, whether the address has an account or not, and
    both cost one scrypt check: the answer and its timing say nothing about who has an account.
    """
    email = (email or "").strip().lower()
    pair_key, client_key_ = _throttle_keys(email, client)
    rows = {
        row.key: row
        for row in session.scalars(
            select(LoginThrottle).where(LoginThrottle.key.in_((pair_key, client_key_)))
        )
    }
    locks = [r.locked_until for r in rows.values() if r.locked_until and r.locked_until > now]
    if locks:
        raise LoginThrottled(max(locks))
    user = session.scalar(select(User).where(User.email == email))
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    matches = check_password_hash(stored, password or "")
    if matches and user is not None and user.active and user.password_hash:
        if pair_key in rows:
            session.delete(rows[pair_key])
        if not user.session_nonce:
            user.session_nonce = secrets.token_hex(16)
        return user
    for key, limit in ((pair_key, PAIR_FAILURES), (client_key_, CLIENT_FAILURES)):
        _count_failure(session, rows.get(key), key, limit, now)
    return None


def _count_failure(
    session: Session, row: LoginThrottle | None, key: str, limit: int, now: datetime
) -> None:
    """One more failure for ``key``; the limit-th within the window locks the key for a while."""
    if row is None or row.window_start <= now - THROTTLE_WINDOW:
        if row is None:
            row = LoginThrottle(key=key)
            session.add(row)
        row.failures, row.window_start, row.locked_until = 0, now, None
    row.failures += 1
    if row.failures >= limit:
        row.locked_until = now + LOCK_FOR
        row.failures, row.window_start = 0, now
    # Keys whose window and lock are over say nothing any more.
    session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.window_start < now - THROTTLE_WINDOW - LOCK_FOR,
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
        )
    )


def revoke_sessions(user: User) -> None:
    """End every signed-in session of ``user`` (each cookie carries the nonce this replaces)."""
    user.session_nonce = secrets.token_hex(16)


def change_password(user: User, current: str, new: str) -> None:
    """Set a new password, after the current one; every other session of the user ends."""
    errors: dict[str, str] = {}
    if not check_password(user, current or ""):
        errors["current_password"] = "is not your current password"
    if len(new or "") < MIN_PASSWORD:
        errors["new_password"] = f"must be at least {MIN_PASSWORD} characters"
    elif new == current:
        errors["new_password"] = "must differ from the current one"
    if errors:
        raise ValidationError("the password was not changed", errors)
    set_password(user, new)


def set_password(user: User, password: str) -> None:
    """Give ``user`` a new password (an admin's reset, the CLI); their sessions end."""
    if len(password or "") < MIN_PASSWORD:
        raise ValidationError(
            "the password is too short",
            {"password": f"must be at least {MIN_PASSWORD} characters"},
        )
    user.password_hash = generate_password_hash(password, method="scrypt")
    revoke_sessions(user)


def user_for_session(session: Session, user_id: str) -> User | None:
    """The active user a session cookie's id (``<id>:<nonce>``) still belongs to, or None."""
    row, _, nonce = (user_id or "").partition(":")
    if not row.isdigit() or len(row) > 18 or not nonce:
        return None
    user = session.get(User, int(row))
    if user is None or not user.active or not user.session_nonce:
        return None
    return user if hmac.compare_digest(user.session_nonce, nonce) else None


def _admins_left(session: Session, excluding: User) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                User.role == Role.ADMIN, User.active.is_(True), User.id != excluding.id
            )
        )
        or 0
    )


def update_user(session: Session, user: User, role: str, active: bool) -> User:
    """Change a user's role or deactivate them, never leaving the team without an admin."""
    if role not in set(Role):
        raise ValidationError("unknown role", {"role": f"must be one of {', '.join(Role)}"})
    losing_admin = user.role == Role.ADMIN and (role != Role.ADMIN or not active)
    if losing_admin and _admins_left(session, user) == 0:
        raise Conflict("nurture needs at least one active admin; promote someone else first")
    if user.active and not active:
        revoke_sessions(user)  # signed out at once, not at their next sign-in
    user.role = role
    user.active = active
    return user


def revoke_token(session: Session, token_id: int) -> ApiToken | None:
    """Delete an API token; callers using it get 401 from then on."""
    token = session.get(ApiToken, token_id)
    if token is not None:
        session.delete(token)
    return token
