"""What the daemon's worker processes (the pipeline's, the archive's renderers) share."""

from __future__ import annotations

import os
import signal
import threading
import time


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie, dead but not yet reaped, does not)."""
    if pid <= 0:  # no process (and os.kill would signal a whole group)
        return False
    if not _HAVE_PROC:  # no /proc (a container without it): a signal 0 asks the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # exists, but is not ours to signal
            return True
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:
        return True


_HAVE_PROC = os.path.exists("/proc/self/stat")


def exit_with_daemon(daemon_pid: int, every: float = 1.0) -> None:
    """Exit this worker as soon as the daemon that started it is gone (killed with -9,
    out of memory): a pool process waits on a queue whose both ends it holds, so nothing
    else would ever end it, and a worker left behind holds files and the database's
    write turn. The daemon is the worker's parent, or (forkserver) its grandparent."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent and alive(daemon_pid):
            time.sleep(every)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-daemon", daemon=True).start()


def leave_signals_to_the_daemon() -> None:
    """Ctrl-C and SIGTERM reach the whole process group: the daemon finishes the work in
    hand and then stops its workers, so a worker must not stop half-way on its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
