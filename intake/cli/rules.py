"""`intake rules suggest`: candidate keyword rules from the staff's corrections and a team's labelled files.

Never touches the live rules: it writes a candidate file (or prints it) for a person to read
and copy from; the daemon reloads rules.toml when they save it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path


def cmd_rules(args, out) -> int:
    from classify.evaluate import load_labelled
    from classify.rules import load_rules
    from classify.suggest import Example, render_toml, suggest, summary

    rules_file = Path(args.config_obj.rules_file)
    if args.out is not None and args.out.resolve() == rules_file.resolve():
        print(f"intake: --out {args.out} is the live rules file; write the candidates elsewhere and copy what you accept", file=sys.stderr)
        return 2
    examples: list[Example] = []
    stored = 0
    if not args.no_stored:
        from intake.cli.common import context
        from intake.tickets.corrections import examples as stored_examples

        with context(args).read_sessions() as session:
            rows = stored_examples(session)
        stored = len(rows)
        examples += [Example(r["subject"], r["body"], r["type"], r["urgency"], r["source"]) for r in rows]
    for path in args.imports:
        examples += [Example(r["subject"], r["body"], r["type"], r["urgency"], f"{path}:{r['line']}") for r in load_labelled(path)]
    if not examples:
        print("intake: no labelled examples: no staff correction is stored yet and no --import file was given", file=sys.stderr)
        return 1
    ruleset = load_rules(rules_file)
    result = suggest(examples, ruleset, min_support=args.min_support, min_precision=args.min_precision, top=args.top)
    header = [
        f"Candidate rules from `intake rules suggest`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, against {rules_file}",
        "examples: " + ", ".join(["stored corrections not read" if args.no_stored else f"{stored} corrected tickets", *map(str, args.imports)]),
        f"terms with support >= {args.min_support} and precision >= {args.min_precision:.0%}, at most {args.top} per target",
        *summary(result),
    ]
    text = render_toml(result, header)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        load_rules(args.out)  # what the team is handed loads as it is (else RulesError names the file)
        for c in result.candidates:
            out.row(
                {
                    "target": c.target,
                    "keyword": c.keyword,
                    "precision": round(c.precision, 4),
                    "support": c.support,
                    "matched": c.matched,
                    "held_out_matched": c.held_matched,
                    "fixes": c.fixes,
                    "breaks": c.breaks,
                },
                f"{c.target:<20} {c.keyword:<16} precision {c.precision:.0%} ({c.support}/{c.matched}), held out: fixes {c.fixes}, breaks {c.breaks}",
            )
    for line in header[3:]:
        print(line, file=sys.stderr)
    if args.out is not None:
        print(f"{len(result.candidates)} candidate rules written to {args.out}", file=sys.stderr)
    return 0


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rules", parents=[common], help="keyword rules: candidates learned from labelled examples")
    rsub = p.add_subparsers(dest="action", required=True)
    s = rsub.add_parser(
        "suggest",
        parents=[common],
        help="propose keyword rules from staff corrections and labelled files",
        description="Reads the staff's #type/#urgency corrections and any --import files (.jsonl or .csv with subject, body, "
        "type, urgency) and writes candidate [[rules]] with their precision, support and effect on a held-out part. "
        "The live rules are never changed.",
    )
    s.add_argument(
        "--import",
        dest="imports",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a labelled .jsonl or .csv file (may be given more than once)",
    )
    s.add_argument("--out", type=Path, metavar="FILE", help="write the candidate rules here (default: standard output)")
    s.add_argument("--no-stored", action="store_true", help="only the imported files, not the corrections in the database")
    s.add_argument("--top", type=int, default=10, help="at most this many candidates per target (default 10)")
    s.add_argument("--min-support", type=int, default=3, help="examples of the label a term must be in (default 3)")
    s.add_argument("--min-precision", type=float, default=0.8, help="share of a term's examples with the label (default 0.8)")
    p.set_defaults(func=cmd_rules)
