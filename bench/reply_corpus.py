"""The reply corpus (tests/fixtures/replies): how many staff replies would reach the
customer exactly as they must, and how many would carry any quoted line.

    .venv/bin/python bench/reply_corpus.py            # prints the table; --write updates bench/reply_corpus.md

Each reply is read as the daemon reads it (intake.staffmail.reading.read_reply, the
relay's own function): parsed from its bytes, quotes and signature cut, commands
taken out, the safety net applied. "Right" means the relayed text equals the expected
text (line ends and runs of blank lines aside; talon's HTML cases without whitespace,
as talon's own test compares them) and the commands are those expected. "Quoted
line relayed" means a line of the quoted part reached the text to relay; a reply the
safety net withheld relays nothing.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.inbound.htmltext import html_to_text  # noqa: E402
from intake.inbound.message import ParsedMessage, parse_message  # noqa: E402
from intake.inbound.quote import KnownText, markers, normalise  # noqa: E402
from intake.staffmail.reading import read_reply  # noqa: E402

CORPUS = ROOT / "tests" / "fixtures" / "replies"
TODAY = date(2026, 11, 23)
STAFF_IDS = {"li.na", "sun.yue", "李娜"}


@dataclass
class Fixture:
    name: str  # source/file
    split: str  # "own" (written and tuned on here), "heldout" (talon, quotequail), "blind" (never run before its expectations were fixed)
    message: ParsedMessage
    relay: str  # the exact text the customer must receive ("" for nothing)
    commands: list[str]
    known: KnownText
    quoted: set[str] = field(default_factory=set)  # normalised lines of the quoted part
    signature: str = ""
    compare: str = "lines"  # "lines" or "no_whitespace"


@dataclass
class Outcome:
    fixture: Fixture
    relayed: str  # what would go to the customer ("" when nothing would)
    commands: list[str]
    withheld: bool
    quoted_lines: list[str]

    @property
    def right(self) -> bool:
        nfkc = lambda lines: [unicodedata.normalize("NFKC", line).strip() for line in lines]  # noqa: E731
        return _same(self.relayed, self.fixture.relay, self.fixture.compare) and nfkc(self.commands) == nfkc(self.fixture.commands)


def _same(a: str, b: str, how: str) -> bool:
    if how == "no_whitespace":
        return re.sub(r"\s+", "", a) == re.sub(r"\s+", "", b)
    squeeze = lambda s: re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in s.strip().splitlines()))  # noqa: E731
    return squeeze(a) == squeeze(b)


def _text_message(text: str, html: str | None = None) -> ParsedMessage:
    """A parsed message around a bare text (quotequail's cases are bodies, not mails)."""
    body = text if html is None else html_to_text(html, [])
    return ParsedMessage(
        message_id=None,
        in_reply_to=[],
        references=[],
        from_addr="staff@example.com",
        from_name="",
        reply_to=None,
        to_addrs=[],
        cc_addrs=[],
        subject="",
        date=None,
        text=body,
        html=html,
        new_text="",
        language="en",
        attachments=[],
        headers=[],
    )


def _lines(text: str) -> set[str]:
    return {n for n in (normalise(line) for line in text.splitlines()) if len(n) >= 4}


def load_own() -> list[Fixture]:
    folder = CORPUS / "own"
    sent = json.loads((folder / "sent.json").read_text(encoding="utf-8"))
    known = KnownText(internal=sent["internal"], customer=sent["customer"])
    quoted = set().union(*(_lines(t) for t in sent["internal"]))
    out = []
    for path in sorted(folder.glob("*.eml")):
        expect = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        out.append(
            Fixture(
                f"own/{path.stem}",
                "own",
                parse_message(path.read_bytes()),
                expect["relay"],
                expect["commands"],
                known,
                quoted - _lines(expect["relay"]),
                expect.get("signature", ""),
            )
        )
    return out


def load_talon() -> list[Fixture]:
    folder = CORPUS / "talon"
    expect = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    out = []
    for name, relay in sorted(expect["standard_replies"].items()):
        message = parse_message((folder / "standard_replies" / name).read_bytes())
        keep = _lines(relay) | _lines(expect["signature_removed"].get(name, ""))
        out.append(Fixture(f"talon/{name}", "heldout", message, relay, [], KnownText(), _lines(message.text) - keep))
    for path in sorted((folder / "html_replies").glob("*.html")):
        html = path.read_text(encoding="utf-8")
        message = _text_message("", html)
        relay = expect["html_replies"]
        out.append(
            Fixture(
                f"talon/html/{path.name}", "heldout", message, relay, [], KnownText(), _lines(message.text) - _lines(relay), compare="no_whitespace"
            )
        )
    return out


def _cases(path: Path) -> list[tuple]:
    """The literal cases of a pytest.mark.parametrize in a vendored test file, without running it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize":
            return ast.literal_eval(node.args[1])
    return []


def load_quotequail() -> list[Fixture]:
    folder = CORPUS / "quotequail"
    out = []
    for i, (text, _, with_intro) in enumerate(_cases(folder / "quote_cases.py.txt")):
        reply = "".join(part for is_reply, part in with_intro if is_reply)
        quote = "".join(part for is_reply, part in with_intro if not is_reply)
        out.append(Fixture(f"quotequail/text-{i + 1}", "heldout", _text_message(text), reply.strip(), [], KnownText(), _lines(quote) - _lines(reply)))
    for i, (html, _, with_intro) in enumerate(_cases(folder / "quote_html_cases.py.txt")):
        reply = html_to_text("".join(part for is_reply, part in with_intro if is_reply), [])
        quote = html_to_text("".join(part for is_reply, part in with_intro if not is_reply), [])
        out.append(
            Fixture(f"quotequail/html-{i + 1}", "heldout", _text_message("", html), reply.strip(), [], KnownText(), _lines(quote) - _lines(reply))
        )
    return out


def load_blind(
    expected: str = "expected.json", split: str = "blind", sources: tuple[str, ...] = ("mail-parser-reply", "email-reply-parser")
) -> list[Fixture]:
    """Third-party test mails as bare bodies, expectations written before any run: mail-parser-reply's
    and email_reply_parser's (expected_unseen.json: added once the rules were final), crisp-oss's
    email-reply-parser (the 2026-12-06 blind split)."""
    out = []
    for source in sources:
        folder = CORPUS / source
        expect = json.loads((folder / expected).read_text(encoding="utf-8"))["expected"]
        for name, relay in sorted(expect.items()):
            text = (folder / "emails" / name).read_text(encoding="utf-8")
            quoted = {n for n in _lines(text) - _lines(relay) if not markers.is_signature_start(n)}
            out.append(Fixture(f"{source}/{name}", split, _text_message(text), relay, [], KnownText(), quoted))
    return out


def load_corpus() -> list[Fixture]:
    return (
        load_own()
        + load_talon()
        + load_quotequail()
        + load_blind()
        + load_blind("expected_unseen.json", "unseen")
        + load_blind("expected.json", "crisp", ("crisp-email-reply-parser",))
    )


def run(fixture: Fixture) -> Outcome:
    msg = fixture.message
    reading = read_reply(
        msg,
        fixture.known,
        signatures=[fixture.signature] if fixture.signature else [],
        own_addresses=[msg.from_addr],
        staff_lookup=lambda word: word if word in STAFF_IDS else None,
        today=TODAY,
    )
    parsed = reading.parsed
    relayed = parsed.body if reading.relayable else ""
    commands = [c.line for c in parsed.commands]
    expected = _lines(fixture.relay)
    quoted = [line for line in relayed.splitlines() if normalise(line) in fixture.quoted and normalise(line) not in expected]
    return Outcome(fixture, relayed, commands, bool(reading.leaked), quoted)


def summary(outcomes: list[Outcome]) -> dict:
    n = len(outcomes)
    right = sum(o.right for o in outcomes)
    return {
        "replies": n,
        "right": right,
        "share_right": right / n if n else 0.0,
        "with_quoted_line": sum(bool(o.quoted_lines) for o in outcomes),
        "withheld": sum(o.withheld for o in outcomes),
    }


def report(outcomes: list[Outcome]) -> str:
    rows = [
        "| split | replies | relayed exactly right | share | relayed with any quoted line | withheld by the safety net |",
        "|---|---|---|---|---|---|",
    ]
    for split, label in (
        ("own", "own (Chinese clients and languages; tuned on)"),
        ("heldout", "held out: talon, quotequail"),
        ("blind", "blind: mail-parser-reply, email_reply_parser"),
        ("unseen", "once unseen (first run 5/10; tuned on since): mail-parser-reply, email_reply_parser"),
        ("crisp", "crisp-oss/email-reply-parser (blind first run 16/24; tuned on since)"),
        (None, "all"),
    ):
        s = summary([o for o in outcomes if split is None or o.fixture.split == split])
        rows.append(f"| {label} | {s['replies']} | {s['right']} | {s['share_right']:.0%} | {s['with_quoted_line']} | {s['withheld']} |")
    wrong = [o for o in outcomes if not o.right or o.quoted_lines]
    lines = ["\n".join(rows), "", "Not exactly right:" if wrong else "Every reply exactly right."]
    for o in wrong:
        lines.append(
            f"- `{o.fixture.name}`: relayed {o.relayed[:120]!r}, expected {o.fixture.relay[:120]!r}"
            + (f", commands {o.commands} vs {o.fixture.commands}" if not o.right and _same(o.relayed, o.fixture.relay, o.fixture.compare) else "")
            + (f"; QUOTED LINES: {o.quoted_lines[:3]}" if o.quoted_lines else "")
            + ("; withheld" if o.withheld else "")
        )
    return "\n".join(lines)


HISTORY = """
## How the figures came about (2026-12-06, issue 14)

Same corpus, same scoring, replies / exactly right / relayed with any quoted line:

| reader | own (46 then, 48 now) | held out: talon, quotequail (34) | blind (13) |
|---|---|---|---|
| before: strip_quoted + commands only at the top (commit 24e3d44) | 21 right, 13 quoted | 24 right, 9 quoted | 4 right, 9 quoted |
| mail-parser-reply 1.36 alone (12 languages) + our command parser | 12 right, 11 quoted | 20 right, 10 quoted | 5 right, 8 quoted |
| quotequail 0.5.4 alone (quote_intro_line) + our command parser | 7 right, 11 quoted | 20 right, 11 quoted | 3 right, 10 quoted |
| this reader, first run | 43 right, 0 quoted | 32 right, 2 quoted | 12 right, 1 quoted |
| this reader, now | 48 right, 0 quoted | 34 right, 0 quoted | 13 right, 0 quoted |

| reader | once unseen (10) | crisp (24) |
|---|---|---|
| rules before 2026-12-06's widening (blind first runs) | 5 right, 5 quoted | 16 right, 8 quoted |
| rules after it (tuned on) | 10 right, 0 quoted | 24 right, 0 quoted |

- First run, own: Outlook for iOS's 'Get Outlook for iOS<https://…>' and Samsung's '从我的 … 智能手机发送。'
  were not taken for signatures (the third was the scoring's own NFKC slip on a command line).
- First run, held out: Android's Russian attribution wrapped over two lines and Apple's 'Begin forwarded
  message:' relayed their quote lines; two general rules were added, so that split is no longer blind.
- The blind split was then added (expectations written before its first run): a German attribution
  wrapped after 'schrieb John Doe <' relayed its quote; one rule (an attribution joined over two or three
  lines) fixed it. No split is unseen any more: the next new client format is the real test, and the
  safety net (a line of our staff-only mail left in the text withholds the reply) is there for it.
- With the known-text rule switched off (client markers only), own is 43/46: the three replies with no
  marker at all (a bare pasted quote, a quote merged into one HTML paragraph, a command-like line inside
  the quote) are wrong, and none leaked only because the notification's own '#' lines made the command
  parser refuse them.
- Two own replies were added later: Outlook 16 zh as plain + HTML, and a staff member citing two lines
  of the customer's message in the answer, which the known-text rule first took for the quote (the answer
  below them lost); lines that are only the customer's words now start no quote.
- Unseen split (10 more test mails of the same two projects, added once the rules were final, expectations
  written first, never tuned on): 5 right, 5 relayed quoted lines. All five are client-marker misses on mail
  that quotes something other than our notification: attributions in Czech, Swedish and Hungarian (no
  rules for those languages), a Polish header block with nothing above it, Android Gmail's wrapped quote
  lines without '>'. Built around our notification instead (a staff reply), the same shapes lose the
  whole quote to the known-text rule; the attribution lines and wrap fragments they left were then cut by
  two rules for staff replies only (lines ending in ':' above a '>' block of our text; a line that continues
  one of our quoted lines), which leave this split's figures as they were.
- crisp split (2026-12-06, blind): 24 test mails of crisp-oss/email-reply-parser (MIT), expectations written
  and committed (11b06c9) before their first run. First run, before any rule was changed: 16 of 24 right,
  8 relayed quoted lines: Outlook for Android's 'Download Outlook for Android<…>' / 'Télécharger Outlook pour
  Android<…>' / 'Gesendet von Outlook für Android<…>' not taken for signatures (3), a Danish header block under
  '-------- Oprindelig besked --------' (Fra:/Dato:/Til:/Emne:), a Finnish attribution ('kirjoitti:'), a German
  attribution that starts with the name ('X <a@b> schrieb am So., 23.' + 'Juni 2024, 21:08:'), a Russian Gmail
  attribution with no verb ('ср, 30 апр. 2025 г. в 15:19, John Doe <doe@example.com>:' above unprefixed text),
  Zoho's '---- On … wrote ----'.
- Then (same day) the marker tables were widened for the languages these misses and the unseen split's showed,
  and for those common in business mail, as general rules, not per fixture: attribution verbs (skrev,
  kirjoitti, napsal(a), napisał(a), írta, yazdı, έγραψε, đã viết, menulis, a scris, Thai, Arabic, Hebrew) and
  openers (Den, Dne, W dniu, Vào, Pada, Στις, เมื่อ, في, בתאריך); name-first 'X <a@b> schrieb am <date>:', also
  wrapped; Gmail's verbless 'date, Name <addr>:'; Zoho's dashed attribution; header labels and 'original
  message' lines in da/no/sv/fi/cs/pl/hu/tr/el/vi/id/th/ar/he; Outlook's 'Download Outlook for Android' lines in
  en/fr/de/es/pt as signatures; Android Gmail's wrapped quote lines without '>' (a line between two '>' lines
  whose first word would not have fitted on the long quoted line above). Result: unseen 5 -> 10 of 10, crisp
  16 -> 24 of 24, own, held out and blind unchanged (all right, 0 quoted). Both splits are now tuned on:
  no blind split is left, and the figures above them are the honest blind ones (unseen 5/10, crisp 16/24,
  i.e. 21 of 34 third-party mails right on first sight, 13 relaying quoted lines). tests/unit/test_quote.py
  carries hand-written client lines of the languages no corpus mail has (tr, el, vi, id, th, ar, he, pl, no)
  and lines that only resemble a marker, which must be kept.
- Neither library is used: on the Chinese clients (Foxmail, Alibaba, Outlook zh, QQ/Exmail) and several
  header blocks they relay the quote (rows above); they know nothing of what we sent. Their language
  tables informed intake/inbound/quote/markers.py.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write the results into bench/reply_corpus.md")
    args = parser.parse_args()
    outcomes = [run(f) for f in load_corpus()]
    text = report(outcomes)
    print(text)
    if args.write:
        md = ROOT / "bench" / "reply_corpus.md"
        md.write_text(
            "# Reply corpus: staff replies relayed exactly right\n\n`.venv/bin/python bench/reply_corpus.py --write`"
            f" ({date.today().isoformat()})\n\n{text}\n{HISTORY}",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
