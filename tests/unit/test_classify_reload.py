"""Hot reload with real file edits watched by watchdog."""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path

from classify import Classifier, RulesError, RulesWatcher

RULES = '[[rules]]\nname = "r"\ntarget = "type:{type}"\nkeywords = ["widget"]\n'


def wait(q: queue.Queue, timeout: float = 10.0):
    return q.get(timeout=timeout)


def test_good_edit_takes_effect_and_broken_edit_keeps_old_rules(tmp_path: Path):
    """Editing the file reloads it; a broken edit is reported with its line and the rules in force stay."""
    path = tmp_path / "rules.toml"
    path.write_text(RULES.format(type="complaint"))
    in_force = {"rules": Classifier.from_file(path)}
    reloads: queue.Queue = queue.Queue()
    errors: queue.Queue = queue.Queue()

    def reloaded(c: Classifier) -> None:
        in_force["rules"] = c
        reloads.put(c)

    watcher = RulesWatcher(path, reloaded, errors.put, debounce=0.05)
    watcher.start()
    try:
        time.sleep(0.2)
        path.write_text(RULES.format(type="fault"))  # in-place edit
        wait(reloads)
        assert in_force["rules"].classify("widget", "").type == "fault"

        path.write_text(RULES.format(type="fault").replace("keywords", "keywrds"))
        error = wait(errors)
        assert isinstance(error, RulesError) and error.line == 4 and "unknown key 'keywrds'" in str(error)
        assert in_force["rules"].classify("widget", "").type == "fault"
        assert reloads.empty()

        # an editor's save: write a temp file, rename it over the rules file
        tmp = tmp_path / ".rules.toml.swp"
        tmp.write_text(RULES.format(type="suggestion"))
        os.replace(tmp, path)
        wait(reloads)
        assert in_force["rules"].classify("widget", "").type == "suggestion"
    finally:
        watcher.stop()
