"""The console's tables (migration 0008): its users, the audit log, failed sign-ins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from intake.store.db import Base
from intake.store.models import UTCDateTime, utcnow

ROLES = ("operator", "compliance")


class ConsoleUser(Base):
    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, with its parameters and salt
    roles: Mapped[str] = mapped_column(String(100))  # "operator", "compliance" or "compliance,operator"
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # part of every session cookie: raised on sign-out, a new password or disabling, which
    # ends every session of the user at once (a cookie is otherwise valid until it expires)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class ConsoleAudit(Base):
    """Who did what, when: every sign-in (and failed one), every action, every download."""

    __tablename__ = "console_audit"
    __table_args__ = (Index("ix_console_audit_at", "at"), Index("ix_console_audit_action", "action", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user: Mapped[str] = mapped_column(String(100))  # the name given (a failed sign-in's name may be unknown)
    action: Mapped[str] = mapped_column(String(40))  # sign_in, sign_in_failed, quarantine_retry, archive_download, ...
    target: Mapped[str] = mapped_column(String(300), default="")  # what it was done to: "quarantine:12", a path
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    ip: Mapped[str] = mapped_column(String(64), default="")


class ConsoleFailedSignIn(Base):
    """A failed sign-in, counted per name for the lock-out; forgotten after a successful one."""

    __tablename__ = "console_failed_sign_ins"
    __table_args__ = (Index("ix_console_failed_name_at", "name", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    ip: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
