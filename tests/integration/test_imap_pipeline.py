"""The IMAP source in front of the real pipeline (no daemon process): the exactly-once
promises that need both sides."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from intake.pipeline.runner import Pipeline
from intake.sources.imap import ImapAccount, ImapSource
from intake.store.models import SourceItem, Ticket
from tests.integration.test_pipeline import mail


def account(dovecot, user: str = "support", **overrides) -> ImapAccount:
    return ImapAccount(name=user, host=dovecot.host, port=dovecot.port, security="plain", username=user, password=dovecot.users[user], **overrides)


def tickets(ctx) -> int:
    with ctx.sessions() as s:
        return s.scalar(select(func.count()).select_from(Ticket))


def test_crash_before_the_move_then_uidvalidity_change_gives_no_duplicate_ticket(ctx, dovecot, monkeypatch):
    """Committed, killed before the MOVE, and the server renumbers the mailbox: the
    same messages come again under new keys and the pipeline knows them by content."""
    dovecot.append_many("support", "INBOX", [mail(f"第 {i} 个问题", subject=f"问题 {i}", sender=f"c{i}@kehu.example.cn") for i in range(3)])
    pipeline, stop = Pipeline(ctx), threading.Event()

    def crash(self, client, uids):
        raise ConnectionResetError("killed between commit and move")

    with monkeypatch.context() as m:
        m.setattr(ImapSource, "_let_go", crash)
        first = ImapSource(account(dovecot), "INBOX", pipeline, stop)
        first.run_once()
        first.close()
    assert tickets(ctx) == 3

    dovecot.reset_uidvalidity("support", "INBOX")
    second = ImapSource(account(dovecot), "INBOX", pipeline, stop)
    assert second.run_once() == 3
    second.close()
    assert tickets(ctx) == 3
    with ctx.sessions() as s:
        outcomes = [o for (o,) in s.execute(select(SourceItem.outcome).order_by(SourceItem.id))]
    assert outcomes == ["opened"] * 3 + ["duplicate"] * 3
    assert dovecot.list_uids("support", "INBOX") == []


def test_same_message_in_two_mailboxes_is_one_ticket(ctx, dovecot):
    raw = mail("发票开错了，请重开。", subject="发票问题", message_id="<twice@kehu.example.cn>")
    dovecot.append("support", "INBOX", raw)
    dovecot.append("support2", "INBOX", raw)
    pipeline, stop = Pipeline(ctx), threading.Event()
    for user in ("support", "support2"):
        source = ImapSource(account(dovecot, user), "INBOX", pipeline, stop)
        assert source.run_once() == 1
        source.close()
    assert tickets(ctx) == 1


def test_flag_mode_never_deletes_and_does_not_take_twice(ctx, dovecot):
    dovecot.append_many("support", "INBOX", [mail("无法登录", subject="登录问题", sender=f"f{i}@kehu.example.cn") for i in range(2)])
    pipeline, stop = Pipeline(ctx), threading.Event()
    source = ImapSource(account(dovecot, on_done="flag"), "INBOX", pipeline, stop)
    assert source.run_once() == 2
    assert source.run_once() == 0
    source.close()
    assert len(dovecot.list_uids("support", "INBOX")) == 2 and tickets(ctx) == 2
