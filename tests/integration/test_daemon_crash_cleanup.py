"""kill -9 of the daemon leaves no process behind: the pipeline's worker, the archive's render pool (and its
forkserver) end on their own within seconds."""

from __future__ import annotations

import os
from pathlib import Path

from tests.daemonproc import DaemonProcess, wait_until, write_config

MAIL = (
    "From: Li Wei <li.wei@example.cn>\r\nTo: support@example.com\r\nSubject: 打印机卡纸\r\n"
    "Message-ID: <crash-cleanup@example.cn>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n打印机卡纸了，请派人看一下。\r\n"
).encode()


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            children = (task / "children").read_text().split()
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


def test_render_pool_ends_when_the_daemon_is_killed(tmp_path):
    var = tmp_path / "var"
    config = write_config(tmp_path / "intake.toml", db_url=f"sqlite:///{tmp_path / 'intake.db'}", var=var)
    daemon = DaemonProcess(config, tmp_path)
    daemon.cli("init")
    daemon.start()
    try:
        drop = var / "drop"
        wait_until(lambda: (drop / "new").is_dir(), 30, what="drop folder")
        (drop / "tmp" / "m1.eml").write_bytes(MAIL)
        os.rename(drop / "tmp" / "m1.eml", drop / "new" / "m1.eml")
        wait_until(lambda: list((var / "archive").rglob("*.pdf")), 90, interval=0.2, what="the case PDF")
        pool = descendants(daemon.proc.pid)
        assert len(pool) >= 2, f"expected a forkserver and render processes, found {pool}"
        daemon.kill9()
        wait_until(lambda: not any(alive(pid) for pid in pool), 15, interval=0.2, what="the render pool to end")
    finally:
        daemon.close()
