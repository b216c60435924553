"""Admin accounts and their API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nurture.models.base import Base


class Role(enum.StrEnum):
    """What a user may do: viewers read, editors change campaigns and candidates, admins all."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"


ROLE_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


class User(Base):
    """Someone who signs in to the admin or owns API tokens."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    role: Mapped[str] = mapped_column(String(20), default=Role.VIEWER)
    active: Mapped[bool] = mapped_column(default=True)
    # Part of every session cookie's user id; a new one (sign-out, a new password, deactivation)
    # makes every cookie issued before it worthless, copies included.
    session_nonce: Mapped[str] = mapped_column(String(32), default="")
    # The zone times are shown in; empty means the browser's.
    timezone: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime]

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")

    def has_role(self, role: str) -> bool:
        """True when this user's role is at least ``role``."""
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    # What Flask-Login asks of a signed-in user; duck-typed, so the model imports no Flask.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        """Deactivated users cannot sign in."""
        return self.active

    def get_id(self) -> str:
        """The id Flask-Login keeps in the session: the row and its current session nonce."""
        return f"{self.id}:{self.session_nonce}"


class LoginThrottle(Base):
    """Failed sign-ins counted for one key: an (account, client) pair, or a client alone.

    Keys are keyed hashes, so the table holds neither addresses typed nor client IPs.
    """

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token for the JSON API, stored as a SHA-256 hash."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens", lazy="joined")
