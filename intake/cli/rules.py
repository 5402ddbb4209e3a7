"""`intake rules suggest` and `intake rules learn`: candidate keyword rules, and a learned
wording (lexicon), from the staff's corrections and a team's labelled files.

Never touches the live rules: each writes a candidate file (or prints it) for a person to
read and copy from; the daemon reloads rules.toml (and its lexicon) when they save it.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path


def _examples(args) -> tuple[list, int]:
    """The labelled examples to learn from: the staff's corrections (unless --no-stored) and
    the --import files; and how many came from corrections."""
    from classify.evaluate import load_labelled
    from classify.suggest import Example

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
    return examples, stored


def cmd_rules(args, out) -> int:
    from classify.rules import load_rules
    from classify.suggest import render_toml, suggest, summary

    rules_file = Path(args.config_obj.rules_file)
    if args.action == "learn":
        return cmd_learn(args, out, rules_file)
    if args.out is not None and args.out.resolve() == rules_file.resolve():
        print(f"intake: --out {args.out} is the live rules file; write the candidates elsewhere and copy what you accept", file=sys.stderr)
        return 2
    examples, stored = _examples(args)
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


# examples of each urgency a learned urgency needs to learn from when no base has one (`intake
# rules learn`; examples whose urgency the rules fix, a type's or no rush, do not count)
MIN_URGENCY_EXAMPLES = 20


def cmd_learn(args, out, rules_file: Path) -> int:
    """A lexicon learned from the examples, added to the shipped lexicon (or --base, or alone
    with --no-base), measured first on a held-out quarter of the new examples."""
    from dataclasses import replace

    from classify.classifier import Classifier
    from classify.errors import RulesError
    from classify.labels import URGENCIES
    from classify.lexicon import Lexicon, learn, load_lexicon, render
    from classify.rules import lexicon_places, load_rules, named_lexicon
    from classify.suggest import held_out, text_of
    from classify.urgency_learning import training_examples, with_learned_urgency
    from intake import resources

    try:
        ruleset = load_rules(rules_file)
    except RulesError as broken:
        # a broken lexicon in force is what a new one replaces: learn, and measure against
        # the keywords alone (a broken rules file itself still stops here)
        ruleset = load_rules(rules_file, read_lexicon=False)
        print(f"intake: the lexicon in force is refused ({broken}); measuring against the keyword rules alone", file=sys.stderr)
    if args.out is not None and args.out.resolve() in {p.resolve() for p in (rules_file, *lexicon_places(rules_file))}:
        print(
            f"intake: --out {args.out} is in force, or would be once written; write the lexicon elsewhere, read it, then copy it over",
            file=sys.stderr,
        )
        return 2
    examples, stored = _examples(args)
    if not examples:
        print("intake: no labelled examples: no staff correction is stored yet and no --import file was given", file=sys.stderr)
        return 1
    # the default base is the shipped lexicon, not the one in force: that one may hold the
    # same corrections from an earlier run, and counting them again each month would weigh
    # them double, then triple
    shipped = resources.defaults() / "lexicon.tsv"
    base = None if args.no_base else load_lexicon(args.base) if args.base else load_lexicon(shipped) if shipped.exists() else ruleset.lexicon
    rows = [(text_of(e), e.type, e.urgency) for e in examples]
    messages = [(e.subject, e.body, e.urgency) for e in examples]
    base_urgency = base.urgency if base is not None else None
    # the rules as they will read the new file: the [lexicon] table as written (weight 0 and
    # axes [] included), or for rules without one yet, its defaults (the learning's signals
    # and the measure alike)
    has_table = named_lexicon(rules_file) is not None
    reading = ruleset if has_table else replace(ruleset, lexicon_weight=1.0, lexicon_axes=("type",))
    # a learned urgency from nothing needs examples of every urgency to learn from (not those
    # whose urgency the rules fix: a type's, no rush): from a few dozen, a model knows too
    # little and urgent_lean calls everything urgent
    counted = learn(rows, min_examples=args.min_examples, base=base)  # the new file's counts
    per_urgency: Counter[str] = Counter()
    if base_urgency is None:
        usable = training_examples(Classifier(replace(reading, lexicon=counted)), [m for m in messages if m[2] is not None])
        per_urgency.update(urgency for *_, urgency in usable)
    learns_urgency = base_urgency is not None or min(per_urgency[u] for u in URGENCIES) >= MIN_URGENCY_EXAMPLES

    def learned(which: list[bool], counts: Lexicon | None = None) -> Lexicon:
        """Counts added to the base's (or `counts`, made already), and the urgency learned
        onward from the base's."""
        if counts is None:
            counts = learn([r for r, keep in zip(rows, which, strict=True) if keep], min_examples=args.min_examples, base=base)
        if not learns_urgency:
            return counts
        return with_learned_urgency(counts, reading, [m for m, keep in zip(messages, which, strict=True) if keep], base=base_urgency)

    # the measure: learned without a quarter of the new examples (chosen by a hash of their
    # text, the same on every run), those classified with the rules in force and with it
    held = [held_out(e, 4) for e in examples]
    trial = learned([not h for h in held])
    now = Classifier(ruleset)
    # as rules.toml would read it: the table as written, or for rules without one yet, its defaults
    then = Classifier(replace(reading, lexicon=trial, learned_urgency=ruleset.learned_urgency and trial.urgency is not None))
    measured = {"type": [0, 0, 0], "urgency": [0, 0, 0]}  # axis → held-out examples labelled, right now, right then
    for example, is_held in zip(examples, held, strict=True):
        if not is_held:
            continue
        a, b = now.classify(example.subject, example.body), then.classify(example.subject, example.body)
        for axis in measured:
            truth = getattr(example, axis)
            if truth is not None:
                measured[axis][0] += 1
                measured[axis][1] += getattr(a, axis) == truth
                measured[axis][2] += getattr(b, axis) == truth
    lexicon = learned([True] * len(examples), counted)
    figures = [
        f"held out ({axis}, {n} examples): {right_now / n:.1%} with the rules in force, {right_then / n:.1%} with this lexicon"
        for axis, (n, right_now, right_then) in measured.items()
        if n
    ]
    header = [
        f"Learned by `intake rules learn`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, for {rules_file}",
        "examples: " + ", ".join(["stored corrections not read" if args.no_stored else f"{stored} corrected tickets", *map(str, args.imports)]),
        "added to: " + (base.path if base is not None else "nothing (--no-base)" if args.no_base else "nothing (the rules name no lexicon)"),
        f"terms in at least {args.min_examples} of the new examples; {len(lexicon.counts)} terms, {lexicon.trained_on} examples in all",
        (
            "the learned urgency: "
            + ("onward from " + str(base.path) if base is not None and base_urgency is not None else "from these examples alone")
            if learns_urgency
            else "no learned urgency: "
            + ", ".join(f"{per_urgency[u]} {u}" for u in URGENCIES)
            + f" examples to learn from (whose urgency the rules do not fix), and at least {MIN_URGENCY_EXAMPLES} of each"
            " are needed without a base that has one;"
            " rules with learned_urgency = true refuse this file"
        ),
        *figures,
        "To use it: read it, copy it over the file named by [lexicon] file in the rules, and save; the daemon reloads it.",
    ]
    text = render(lexicon, header)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        load_lexicon(args.out)  # what the team is handed loads as it is
        out.row(
            {"terms": len(lexicon.counts), "examples": lexicon.trained_on, "held_out": measured}, f"{len(lexicon.counts)} terms written to {args.out}"
        )
    for line in header[1:-1]:
        print(line, file=sys.stderr)
    return 0


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rules", parents=[common], help="keyword rules and learned wording from labelled examples")
    # where both sub-commands take their labelled examples from (_examples)
    examples = argparse.ArgumentParser(add_help=False)
    examples.add_argument(
        "--import",
        dest="imports",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a labelled .jsonl or .csv file (may be given more than once)",
    )
    examples.add_argument("--no-stored", action="store_true", help="only the imported files, not the corrections in the database")
    rsub = p.add_subparsers(dest="action", required=True)
    s = rsub.add_parser(
        "suggest",
        parents=[common, examples],
        help="propose keyword rules from staff corrections and labelled files",
        description="Reads the staff's #type/#urgency corrections and any --import files (.jsonl or .csv with subject, body, "
        "type, urgency) and writes candidate [[rules]] with their precision, support and effect on a held-out part. "
        "The live rules are never changed.",
    )
    s.add_argument("--out", type=Path, metavar="FILE", help="write the candidate rules here (default: standard output)")
    s.add_argument("--top", type=int, default=10, help="at most this many candidates per target (default 10)")
    s.add_argument("--min-support", type=int, default=3, help="examples of the label a term must be in (default 3)")
    s.add_argument("--min-precision", type=float, default=0.8, help="share of a term's examples with the label (default 0.8)")
    learn = rsub.add_parser(
        "learn",
        parents=[common, examples],
        help="learn the wording (a lexicon) from staff corrections and labelled files",
        description="Counts the terms of the staff's #type/#urgency corrections and any --import files (.jsonl or .csv with "
        "subject, body, type, urgency), adds them to the shipped lexicon (--base FILE: to another, e.g. one you edited; "
        "--no-base: alone), learns the urgency onward from the base's learned urgency (from the examples alone only with "
        f"at least {MIN_URGENCY_EXAMPLES} of each urgency), "
        "and writes the new lexicon with its effect on a held-out quarter of the new examples. The live files are never changed.",
    )
    learn.add_argument("--out", type=Path, metavar="FILE", help="write the lexicon here (default: standard output)")
    learn.add_argument("--base", type=Path, metavar="FILE", help="add to this lexicon instead of the shipped one")
    learn.add_argument("--no-base", action="store_true", help="learn from the examples alone")
    learn.add_argument("--min-examples", type=int, default=3, help="a new term must be in this many examples (default 3)")
    p.set_defaults(func=cmd_rules)
