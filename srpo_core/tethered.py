"""``python -m srpo_core.tethered PARENT_PID ARGS...``: run ``srpo ARGS`` in a process that
gets SIGTERM when its parent dies.

A sweep's jobs (local child processes and Ray tasks alike) start their `srpo` command this
way rather than through a ``preexec_fn`` (unsafe in a process with threads, as a Ray worker
is): the kernel's parent-death signal (Linux) is set here, after the exec, and the parent's
pid is checked afterwards so that a parent gone in between is noticed too. The `srpo`
process then ends like an interrupted one (its runs record 'interrupted') when its sweep or
task is killed; elsewhere than Linux it outlives it, and its lease keeps a second trainer
off its runs until it ends.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    parent, args = int(sys.argv[1]), sys.argv[2:]
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux
    if os.getppid() != parent:  # the parent died before the signal was asked for
        sys.exit(128 + signal.SIGTERM)
    from srpo_cli.main import main as srpo

    sys.argv = ["srpo", *args]
    srpo()


if __name__ == "__main__":
    main()
