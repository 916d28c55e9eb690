"""One folder of a public repository's copy, written outside this repository (the benchmarks'
data sets: bench/cfp.py, bench/agegap.py). Nothing of it is committed here."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path


def extract_folder(source: Path, folder: str, out: Path) -> None:
    """``folder`` of the copy at ``source`` (a checkout, or a git directory, bare or not: read
    with ``git archive HEAD``, no work tree needed), its contents written under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    if (source / folder).is_dir():
        # A checkout: the folder as is (cp keeps the tree; no git needed).
        subprocess.run(["cp", "-R", f"{source / folder}/.", str(out)], check=True)
        return
    git_dir = next((d for d in (source, source / ".git") if (d / "objects").is_dir()), None)
    if git_dir is None:
        raise SystemExit(f"{source} is neither a checkout with {folder}/ nor a git directory")
    command = ["git", f"--git-dir={git_dir}", "archive", "--format=tar", "HEAD", folder]
    with subprocess.Popen(command, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
            for member in archive:
                if member.isfile() and member.name.startswith(f"{folder}/"):
                    member.name = member.name.removeprefix(f"{folder}/")
                    archive.extract(member, out, filter="data")
    if process.returncode != 0:
        raise SystemExit(f"git archive failed in {git_dir} (exit {process.returncode})")
