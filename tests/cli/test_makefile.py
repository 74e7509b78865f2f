"""``make install`` (the first step of ``make demo``): one line per phase, quiet otherwise.

The real install takes a minute or more; here ``PYTHON`` is a stand-in that records what it is
asked to do and prints what the real tools print on success, so only the Makefile is tested.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.cli.test_apply import ROOT

STUB = """#!/bin/sh
echo "$0 $*" >> "{log}"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
    exit 0
fi
case "$1" in
    tools/fetch_helm.py) echo "fetch_helm: installed $3/helm (v4.1.4) in 3.2s";;
esac
exit 0
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_install_says_what_it_is_doing_one_line_per_phase(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    stub = tmp_path / "python3"
    stub.write_text(STUB.format(log=log))
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "--no-print-directory", "install", f"PYTHON={stub}", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"install: creating a virtual environment in {venv}",
        "install: installing bulk-termination-operator and its test tools from "
        "requirements/*.lock (pip, hashes checked; about a minute the first time)",
        f"install: fetching helm into {venv}/bin",
    ]
    assert result.stderr == ""
    calls = log.read_text()
    assert "-m venv" in calls and "pip install" in calls and "tools/fetch_helm.py" in calls
    installs = [line for line in calls.splitlines() if " -m pip install " in line]
    # Everything from the hashed locks; the project itself last, adding nothing unpinned.
    assert [i.split(" -r ")[-1] for i in installs[:2]] == [
        "requirements/build.lock",
        "requirements/test.lock",
    ]
    assert all("--require-hashes" in i for i in installs[:2])
    assert installs[2].endswith("--no-deps --no-build-isolation -e .")
    assert len(installs) == 3
    assert (venv / ".installed-stamp").exists()

    again = subprocess.run(
        ["make", "--no-print-directory", "install", f"PYTHON={stub}", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert again.returncode == 0 and again.stdout == ""  # installed: nothing to say


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_a_changed_lock_makes_install_run_again(tmp_path: Path) -> None:
    """The install stamp depends on the locks: after `make lock` the next `make test`
    installs the new pins instead of testing the old ones."""
    stamp = tmp_path / "venv" / ".installed-stamp"
    stamp.parent.mkdir()
    stamp.touch()
    newer = {"requirements/test.lock"}
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "install",
            f"VENV={tmp_path / 'venv'}",
            *(f"--what-if={path}" for path in newer),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "--require-hashes -r requirements/test.lock" in result.stdout
