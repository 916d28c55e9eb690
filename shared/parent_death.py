"""A child process that dies with its parent (Linux ``PR_SET_PDEATHSIG``).

gunicorn's workers inherit the master's listening socket. When the master is killed (kill -9, the
OOM killer), orphaned workers go on holding that socket: the kernel keeps completing connections
on the replica's port for as long as they live, so a balancer's connect succeeds and the request
then dies with them (HAProxy answered 502 where it would have retried a refused connection on a
live replica). A worker that gets SIGKILL the moment its master dies closes the port at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int, signum: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``signum`` to this process when its parent thread exits.

    Call it in the child right after the fork; ``parent_pid`` is the pid the parent had. Returns
    False where the platform has no such call (not Linux); the process then lives on as before.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    # The parent may have died between the fork and the call: then no signal will ever come.
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)
    return True
