"""shared/parent_death.py: a child that asked for it dies with its parent; others outlive it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.launcher import ROOT

# The parent starts a child and prints its pid, then sleeps until killed. The child (like a
# gunicorn worker after post_fork) asks to die with the parent when told to, then sleeps.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
print(child.pid, flush=True)
time.sleep(60)
"""
CHILD = """
import os, sys, time
from shared.parent_death import die_with_parent
if sys.argv[1] == "yes":
    assert die_with_parent(os.getppid())
print("ready", flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    # An orphan the reaper has not collected yet is a zombie: dead.
    return "\nState:\tZ" not in state


def child_after_parent_killed(ask: str) -> bool:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, ask], cwd=ROOT, stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        try:
            # The child shares the parent's standard output: "ready" once it has asked.
            assert parent.stdout.readline() == "ready\n"
            assert alive(child)
            parent.kill()
            parent.wait(5)
            deadline = time.monotonic() + 2
            while alive(child) and time.monotonic() < deadline:
                time.sleep(0.02)
            return alive(child)
        finally:
            if alive(child):
                os.kill(child, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_that_asked_dies_with_its_parent_and_one_that_did_not_survives() -> None:
    assert child_after_parent_killed("no") is True
    assert child_after_parent_killed("yes") is False
