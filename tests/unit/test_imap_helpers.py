"""The IMAP source's pure parts: batching by count and size, keys, masking, account checks."""

from __future__ import annotations

import threading

import pytest

from intake.sources.imap import ImapAccount, ImapSource, chunks, mask, ref_key, search_criteria


def account(**overrides) -> ImapAccount:
    values = dict(
        name="support", host="127.0.0.1", port=993, security="tls", username="support@example.com", password="s3cret-pw", mailboxes=["INBOX"]
    )
    values.update(overrides)
    return ImapAccount(**values)


def test_chunks_split_by_count_keeping_order():
    """Seven small messages with a count limit of 3 give [1,2,3] [4,5,6] [7]."""
    pairs = [(uid, 100) for uid in range(1, 8)]
    assert list(chunks(pairs, max_count=3, max_bytes=10_000)) == [[1, 2, 3], [4, 5, 6], [7]]


def test_chunks_split_by_size_and_a_big_message_goes_alone():
    """A batch stops before it passes max_bytes; a message larger than that is a batch of its own."""
    pairs = [(1, 400), (2, 400), (3, 400), (4, 5000), (5, 100)]
    assert list(chunks(pairs, max_count=100, max_bytes=1000)) == [[1, 2], [3], [4], [5]]


def test_chunks_give_a_full_batch_without_reading_the_next_pair():
    """The pairs are asked of the server as they are read (imap._sizes): a batch full by
    count is given before the next pair is read, so no size is asked ahead of need."""
    read: list[int] = []

    def pairs():
        for uid in range(1, 8):
            read.append(uid)
            yield uid, 100

    seen = [(batch, len(read)) for batch in chunks(pairs(), max_count=3, max_bytes=10_000)]
    assert seen == [([1, 2, 3], 3), ([4, 5, 6], 6), ([7], 7)]


def test_chunks_of_nothing_is_nothing():
    assert list(chunks([], max_count=3, max_bytes=10)) == []


def test_ref_key_is_uidvalidity_colon_uid():
    assert ref_key(1795434704, 42) == "1795434704:42"


def test_mask_hides_the_password_everywhere():
    """Every occurrence of the secret is replaced; an empty secret changes nothing."""
    assert mask("login pw=abc failed (abc)", "abc") == "login pw=*** failed (***)"
    assert mask("nothing to hide", "") == "nothing to hide"


def test_account_repr_does_not_show_the_password():
    assert "s3cret-pw" not in repr(account())


def test_account_refuses_unknown_security_and_on_done():
    """security and on_done are checked where the account is made, naming the account."""
    with pytest.raises(ValueError, match=r"imap\[support\]\.security"):
        account(security="ssl")
    with pytest.raises(ValueError, match=r"imap\[support\]\.on_done"):
        account(on_done="delete")


def test_search_skips_done_messages_in_both_modes():
    """Messages carrying the done keyword are never offered again, whatever on_done is."""
    assert search_criteria(account(on_done="flag")) == ["UNKEYWORD", "$IntakeDone"]
    assert search_criteria(account(on_done="move", done_flag="$Done")) == ["UNKEYWORD", "$Done"]


def test_source_refuses_a_mailbox_that_is_its_own_processed_folder():
    """Moving INBOX's mail into INBOX would offer it for ever: refused at construction."""
    with pytest.raises(ValueError, match="processed folder"):
        ImapSource(account(processed_folder="INBOX"), "INBOX", sink=None, stop=threading.Event())
    ImapSource(account(on_done="flag", processed_folder="INBOX"), "INBOX", sink=None, stop=threading.Event())
