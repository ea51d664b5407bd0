"""The README pastes: every shell block in it runs as written. The two commands (the second is what CI runs), `kact
up` with simulated time, then the walkthrough and every block after it in one shell, as a clinic developer would
paste them one after the other."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from test_kact_up import start, stop

from scheduler.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```bash\n(.*?)^```", README, re.S | re.M)
WALKTHROUGH_START = "export KACT=http://127.0.0.1:8000 OP=<operator key>\n"


def command_of(block: str) -> str:
    (command,) = [line for line in block.splitlines() if line and not line.startswith("#")]
    return command


def test_the_readme_s_test_command_is_what_ci_runs() -> None:
    assert len(BLOCKS) >= 4, "the two commands, kact up with simulated time, the walkthrough"
    assert command_of(BLOCKS[1]).endswith("&& pytest")
    assert command_of(BLOCKS[1]) in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readme_s_first_command_installs_and_runs_the_system(tmp_path: Path) -> None:
    """The first command, verbatim, in a copy of the repository: a new virtual environment, the install from the
    lock file, and `kact up` serving once ready."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    repo = tmp_path / "kact"
    for name in filter(None, tracked.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    # The machine's Python, not this test run's virtual environment.
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not p.startswith(str(ROOT)))
    port = free_port()
    process, _ = start(tmp_path / "data", port, cwd=repo, timeout=900, command=["bash", "-c", command_of(BLOCKS[0])],
                       extra_env={"PATH": path, "KACT_SIMULATED_TIME": "0", "VIRTUAL_ENV": ""})
    try:
        assert (repo / ".venv" / "bin" / "kact").exists()
        assert httpx.get(f"http://127.0.0.1:{port}/rules", timeout=10).status_code == 200
    finally:
        said = stop(process)
    assert process.returncode in (0, 130), said


@pytest.mark.integration
def test_the_walkthrough_and_every_block_after_it_run_in_one_shell(tmp_path: Path) -> None:
    server = command_of(BLOCKS[2])
    assert server.startswith("KACT_SIMULATED_TIME=1 kact up"), server
    (walkthrough,) = [i for i, block in enumerate(BLOCKS) if block.startswith(WALKTHROUGH_START)]
    port = free_port()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # `kact`, as in an activated venv
    process, operator_key = start(tmp_path / "data", port, command=["bash", "-c", server],
                                  extra_env={"KACT_SIMULATED_TIME": "", "PATH": path})
    try:
        base = f"http://127.0.0.1:{port}"
        script = "set -euo pipefail\n" + "\n".join(BLOCKS[walkthrough:]).replace(
            WALKTHROUGH_START, f"export KACT={base} OP={operator_key}\n", 1)
        run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300,
                             env={k: v for k, v in os.environ.items() if not k.startswith("KACT_")})
        assert run.returncode == 0, run.stdout + run.stderr
        out = run.stdout.splitlines()
        assert "refused, as it should be" in out and "Completed" in out, run.stdout
        assert re.search(r'^refused: \{"type":"/problems/rule-violations"', run.stderr, re.M), run.stderr
        # the later blocks: the partnership changed then ended, opening hours and a closure set, a key rotated (the
        # old one refused from then on), a room's calendar feed read then revoked (404 from then on), a webhook
        # registered (its secret shown once), the feed read from the start; between them the week's reads and booking
        after = out[out.index("Completed") + 1:]
        assert after[:3] == ["['medicine']", "ended", "{'weekday': 'monday', 'opens': '13:30', 'closes': '18:00'}"]
        assert re.fullmatch(r"[0-9a-f-]{36}", after[3]) and "'created_by': 'operator:root'" in after[4], run.stdout
        assert after[5:7] == ["204", "401"], run.stdout
        assert after[7:13] == ["SUMMARY:Medicine session", "DTSTART:20260112T090000Z",
                               "LOCATION:Lindenhof Ketamine Clinic\\, Treatment room 2", "STATUS:CONFIRMED",
                               "204", "404"], run.stdout
        # a clinician's week and a room's day (times in the clinic's zone), the course list's last page
        assert after[13:16] == ["2026-01-13T10:00:00+01:00", "medicine", "None"], run.stdout
        # booking: the rules set, the partnership agreed again, a plan (its medicine session on the Tuesday after a
        # day each for assessment and preparation), booked up to it, the next integration slots and a hold booked
        assert after[16:22] == ["1440", "agreed", "2026-02-10T09:00:00+01:00", "True", "['I1', 'I4']", "booked"], \
            run.stdout
        assert after[22].startswith("whsec_") and after[23] == "update", run.stdout
        # the read access log: the ketamine clinic's read of the course refused (404) and logged as its, one page
        assert after[24] == "404" and re.fullmatch(r"clinic:[0-9a-f-]{36}", after[25]), run.stdout
        assert after[26] == "None" and len(after) == 27, run.stdout
    finally:
        stop(process)

