"""`kact up` as a user runs it: embedded servers, the README walkthrough, Ctrl-C, and a restart."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from scheduler.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
WALKTHROUGH = ROOT / "docs" / "walkthrough.sh"
KACT = Path(sys.executable).with_name("kact")


def start(data_dir: Path, port: int, workers: int = 1, umask: int = 0o022,
          extra_env: dict[str, str] | None = None, command: list[str] | None = None,
          host: str = "127.0.0.1", cwd: Path | None = None,
          timeout: float = 120) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KACT_")}
    env |= {"KACT_DATA_DIR": str(data_dir), "KACT_HTTP_PORT": str(port), "KACT_SIMULATED_TIME": "1",
            "KACT_WORKERS": str(workers), **(extra_env or {})}
    process = subprocess.Popen(command or [str(KACT), "up"], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True, umask=umask)
    output = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    try:
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            output.append(line)
            if line.startswith("Ctrl-C stops it."):
                key = re.search(r"operator key\s+(\S+)", "".join(output))
                assert key, "".join(output)
                # announced only once ready
                assert httpx.get(f"http://{host}:{port}/health/ready", timeout=10).status_code == 200
                process.announcement = "".join(output)  # type: ignore[attr-defined]
                return process, key.group(1)
        raise AssertionError("kact up did not come up:\n" + "".join(output))
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen[str]) -> str:
    """Ctrl-C, and what kact printed from then on."""
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def helpers_of(process: subprocess.Popen[str], module: str) -> list[psutil.Process]:
    """The `python -m <module>` processes `kact up` started (the notifier, the background jobs)."""
    found = []
    for child in psutil.Process(process.pid).children(recursive=True):
        try:
            if child.cmdline()[-2:] == ["-m", module]:
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def restarted(process: subprocess.Popen[str], module: str, old: psutil.Process, timeout: float = 30) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [p for p in helpers_of(process, module) if p.pid != old.pid]
        if fresh:
            return fresh[0]
        time.sleep(0.2)
    raise AssertionError(f"kact up did not restart {module}")


def children_of(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline:
            found.append(proc)
    return found


def test_kact_up_runs_the_walkthrough_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "kact", free_port()
    process, operator_key = start(data_dir, port)
    try:
        # the README's walkthrough, verbatim, against the embedded system
        run = subprocess.run(["bash", str(WALKTHROUGH)], env={**os.environ, "KACT": f"http://127.0.0.1:{port}",
                                                            "OP": operator_key},
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        lines = run.stdout.splitlines()
        # the partnership agreed, the host's week (who is dosed, nothing of the couple), its confirmation, and
        # the course completed with the host's record in it
        assert lines[:3] == ["agreed", "[{'partner': 'a', 'approval_status': None, 'approved_mg': None}]",
                             "confirmed"], run.stdout
        # a refusal shows its problem details (on stderr), naming every rule it breaks
        assert lines[3] == "refused, as it should be", run.stdout
        refusal = next(line for line in run.stderr.splitlines() if line.startswith("refused: "))
        problem = json.loads(refusal.removeprefix("refused: "))
        assert (problem["status"], problem["type"]) == (409, "/problems/rule-violations"), refusal
        assert {"I5", "I11"} <= {v["invariant"] for v in problem["violations"]}, refusal
        assert lines[4] == "completed" and lines[-1] == "Completed", run.stdout
        assert children_of(data_dir), "embedded PostgreSQL and NATS run from the data dir"
        (notifier,) = helpers_of(process, "notifier")
        (jobs,) = helpers_of(process, "scheduler.jobs")
        # A helper that dies is started again; while the jobs are away the API says it is not ready.
        for old, module in ((notifier, "notifier"), (jobs, "scheduler.jobs")):
            old.kill()
            new = restarted(process, module, old)
        deadline = time.monotonic() + 60
        while httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the restarted jobs never took the course index over"
            time.sleep(0.2)
        (notifier,), jobs = helpers_of(process, "notifier"), new
    finally:
        said = stop(process)
    assert process.returncode in (0, 130), said
    assert not notifier.is_running(), "Ctrl-C left the notifier running"
    assert not jobs.is_running(), "Ctrl-C left the background jobs running"
    deadline = time.monotonic() + 30
    while children_of(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert children_of(data_dir) == [], f"Ctrl-C left child processes running; kact said:\n{said}"
    # under umask 022 too, nothing kact wrote is readable by others
    for name in ("cipher.key", "operator.key", "postgres.log", "nats.log", "jobs.log", "notifier.log"):
        assert (data_dir / name).stat().st_mode & 0o077 == 0, name
    assert data_dir.stat().st_mode & 0o007 == 0

    # restart on the same data dir: same operator key, the completed course is still there
    process, again = start(data_dir, port)
    try:
        assert again == operator_key
        courses = httpx.get(f"http://127.0.0.1:{port}/v1/courses?status=completed",
                            headers={"Authorization": f"Bearer {operator_key}"}, timeout=10).json()
        assert len(courses["items"]) == 1
    finally:
        stop(process)


def test_several_worker_processes_serve_one_system(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "kact", free_port()
    process, operator_key = start(data_dir, port, workers=2)
    try:
        def python_children() -> list[psutil.Process]:
            found = []
            for child in psutil.Process(process.pid).children(recursive=True):
                try:
                    if child.name().startswith("python"):
                        found.append(child)
                except psutil.NoSuchProcess:  # a short-lived helper process that ended meanwhile
                    continue
            return found

        assert len(python_children()) >= 2
        run = subprocess.run(["bash", str(WALKTHROUGH)], env={**os.environ, "KACT": f"http://127.0.0.1:{port}",
                                                            "OP": operator_key},
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.splitlines()[-1] == "Completed"
        # Whichever worker answers /metrics sums every worker's counts (prometheus-client's multiprocess mode).
        said = process.announcement  # type: ignore[attr-defined]
        assert f"metrics       http://127.0.0.1:{port}/metrics (operator key)" in said, said
        totals = {commands_accepted(f"http://127.0.0.1:{port}/metrics", operator_key) for _ in range(8)}
        assert len(totals) == 1 and totals.pop() >= 30, totals  # the walkthrough's commands, all of them each time
        pids = {path.stem.rsplit("_", 1)[-1] for path in (data_dir / "metrics").glob("counter_*.db")}
        assert len(pids) >= 2, pids
        # The jobs process and the notifier serve their own, on the loopback ports kact printed.
        helpers = dict(re.findall(r"^  (jobs|notifier) .*metrics (http://127\.0\.0\.1:\d+/metrics)$", said, re.M))
        assert set(helpers) == {"jobs", "notifier"}, said
        jobs = httpx.get(helpers["jobs"], timeout=10).text
        assert re.search(r"^kact_relay_lag_up 1\.0$", jobs, re.M), jobs
        assert re.search(r"^kact_relay_published_total [1-9]", jobs, re.M), jobs
        notifier = httpx.get(helpers["notifier"], timeout=10).text
        assert re.search(r'^kact_notifier_messages_total\{outcome="processed"\} [1-9]', notifier, re.M), notifier
    finally:
        stop(process)
    deadline = time.monotonic() + 30
    while children_of(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert children_of(data_dir) == []


def commands_accepted(url: str, operator_key: str) -> float:
    text = httpx.get(url, headers={"Authorization": f"Bearer {operator_key}"}, timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("kact_commands_total{") and 'outcome="accepted"' in line)


def test_the_readme_walkthrough_is_the_tested_script() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("export KACT=http://127.0.0.1:8000 OP=<operator key>\n", 1)[1].split("\n```", 1)[0]
    script = WALKTHROUGH.read_text()
    assert block.strip() in script, "README walkthrough and docs/walkthrough.sh differ"


pytestmark = pytest.mark.integration


def test_kact_up_announces_itself_on_the_address_it_listens_on(tmp_path: Path) -> None:
    """`--host`, `--port` and `--data-dir` override the settings; readiness is awaited on that address (here a
    loopback address other than 127.0.0.1), and the announcement names where the docs UI and the logs are."""
    data_dir, port = tmp_path / "elsewhere", free_port()
    process, _ = start(tmp_path / "unused", port, host="127.0.0.2", command=[
        str(KACT), "up", "--host", "127.0.0.2", "--port", str(port), "--data-dir", str(data_dir)])
    try:
        said = process.announcement  # type: ignore[attr-defined]
        assert f"API           http://127.0.0.2:{port}\n" in said
        assert f"docs UI       http://127.0.0.2:{port}/schema" in said
        assert "API log       this terminal" in said and f"log {data_dir / 'notifier.log'}" in said
        assert httpx.get(f"http://127.0.0.2:{port}/rules", timeout=10).status_code == 200
    finally:
        said = stop(process)
    assert process.returncode in (0, 130), said
    assert (data_dir / "operator.key").exists() and not (tmp_path / "unused").exists()
