"""`lptrack inspect` and `lptrack cleanup`, and stale sessions: whole process
groups SIGKILLed, segments with and without live users."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lptrack import _shm, admin, cli
from lptrack._core import process_alive
from lptrack._native import NativeTable, open_observer
from lptrack._pytable import PythonTable
from lptrack._table import LP_SCORE

NAN = math.nan
CAPACITY = 8
TIMEOUT = 60

#: A session's processes: the creator (or an attacher, argv[2] == "attach")
#: and a forked child, both in a new process group that the test kills.
GROUP = textwrap.dedent(
    """
    import multiprocessing, sys, time
    from lptrack._native import NativeTable

    def child(table, ready):
        ready.set()  # the fork handlers, registration included, have run
        time.sleep(600)

    if __name__ == "__main__":
        table = NativeTable(8, session_id=sys.argv[1])
        if sys.argv[2] == "create":
            table.claim(5, 0.0, 0.5, 0.0, 0.0)
        context = multiprocessing.get_context("fork")
        ready = context.Event()
        process = context.Process(target=child, args=(table, ready))
        process.start()
        assert ready.wait(60)
        print(process.pid, flush=True)
        time.sleep(600)
    """
)


@pytest.fixture
def groups(tmp_path):
    """Start process groups running GROUP; SIGKILL whatever is left at the end."""
    script = tmp_path / "group.py"
    script.write_text(GROUP)
    started: list[tuple[subprocess.Popen, int]] = []

    def start(session_id: str, mode: str) -> tuple[subprocess.Popen, int]:
        process = subprocess.Popen(
            [sys.executable, str(script), session_id, mode],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        child_pid = int(process.stdout.readline())
        started.append((process, child_pid))
        return process, child_pid

    yield start
    for process, child_pid in started:
        kill_group(process, child_pid)


def kill_group(process: subprocess.Popen, child_pid: int) -> None:
    """SIGKILL the group and wait until its forked child is gone too (it is
    not our child: it is reaped by init, after a moment)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(TIMEOUT)
    process.stdout.close()
    deadline = time.monotonic() + TIMEOUT
    while process_alive(child_pid):
        assert time.monotonic() < deadline, f"pid {child_pid} survived SIGKILL"
        time.sleep(0.001)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "lptrack", *args],
        capture_output=True, text=True, timeout=TIMEOUT,
    )


# -- inspect ---------------------------------------------------------------------------------
@pytest.fixture
def shared(session_id):
    table = NativeTable(CAPACITY, session_id=session_id)
    yield table
    table.close()
    table.unlink()


def populate(table: NativeTable) -> None:
    for task_id in (1, 2, 3):
        table.update(task_id, 0.5, 0.1, NAN, NAN, 0.5, 0.0, 0.0, 0.0, None)
        table.set_fields(task_id, {LP_SCORE: task_id / 10})
    table.set_label(2, "maze", 42)
    table.set_label(3, "maze", 42)


def test_inspect_summarises_a_live_pool(shared, session_id):
    populate(shared)
    summary = admin.inspect(session_id, top=2)
    assert summary["capacity"] == CAPACITY and summary["active_tasks"] == 3
    assert summary["generation"] == shared.generation
    assert summary["counters"]["updates"] == 3
    assert summary["lock_holder_pid"] is None
    assert summary["live_pids"] == [os.getpid()]
    assert [t["task_id"] for t in summary["top_tasks"]] == [3, 2]
    assert summary["top_tasks"][0] == {"task_id": 3, "lp_score": 0.3, "completion_count": 1, "label": "maze"}
    assert summary["labels"] == {"(none)": {"tasks": 1, "completions": 1}, "maze": {"tasks": 2, "completions": 2}}
    with shared.lock():  # a held lock is reported, and inspect does not wait for it
        assert admin.inspect(session_id)["lock_holder_pid"] == os.getpid()
    assert shared.live_pids() == [os.getpid()]  # the observer never registered


def test_inspect_command_text_and_json(shared, session_id, capsys):
    populate(shared)
    result = run_cli("inspect", session_id)
    assert result.returncode == 0, result.stderr
    assert "tasks        3 / 8" in result.stdout and "maze: 2 tasks, 2 completions" in result.stdout
    assert cli.main(["inspect", session_id, "--json", "--top", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["top_tasks"][0]["task_id"] == 3 and summary["live_pids"] == [os.getpid()]


def test_inspect_of_a_missing_session_is_an_error(session_id):
    result = run_cli("inspect", session_id)
    assert result.returncode == 2 and "error" in result.stderr


# -- stale sessions --------------------------------------------------------------------------
def test_a_forked_child_is_a_registered_user(session_id, groups):
    process, child_pid = groups(session_id, "create")
    assert sorted(admin.inspect(session_id)["live_pids"]) == sorted([process.pid, child_pid])
    os.kill(process.pid, signal.SIGKILL)  # the creator dies, its forked child lives on
    process.wait(TIMEOUT)
    table = NativeTable(CAPACITY, session_id=session_id)
    try:
        assert not table.created and table.find(5) >= 0  # in use: attached, not re-created
    finally:
        table.close()
    kill_group(process, child_pid)
    table = NativeTable(CAPACITY, session_id=session_id)
    table.close()
    table.unlink()


def test_a_session_whose_processes_all_died_is_recreated(session_id, groups):
    process, child_pid = groups(session_id, "create")
    kill_group(process, child_pid)  # SIGKILL of the whole group: nobody cleans up
    name = _shm.segment_name(session_id, "native_")
    assert Path(_shm.SHM_DIR, name).exists()
    assert [(e.name, e.removable, e.removed) for e in admin.cleanup(dry_run=True, sessions=[session_id])] == [
        (name, True, False)
    ]
    table = NativeTable(CAPACITY, session_id=session_id)
    try:
        assert table.created and len(table) == 0 and table.live_pids() == [os.getpid()]
    finally:
        table.close()
        table.unlink()


def test_cleanup_keeps_segments_in_use_and_removes_abandoned_ones(session_id, groups):
    creator, creator_child = groups(session_id, "create")
    attacher, attacher_child = groups(session_id, "attach")
    kill_group(creator, creator_child)
    name = _shm.segment_name(session_id, "native_")
    result = run_cli("cleanup", session_id)
    assert result.returncode == 0, result.stderr
    assert f"kept          {name}: in use by pids" in result.stdout
    assert Path(_shm.SHM_DIR, name).exists()
    kill_group(attacher, attacher_child)
    result = run_cli("cleanup", "--dry-run", session_id)
    assert f"would remove  {name}" in result.stdout and Path(_shm.SHM_DIR, name).exists()
    assert cli.main(["cleanup", session_id]) == 0
    assert not Path(_shm.SHM_DIR, name).exists()


def test_cleanup_of_a_segment_without_registry_goes_by_mappings(session_id, monkeypatch):
    table = PythonTable(CAPACITY, session_id=session_id)
    name = _shm.segment_name(session_id, "py_")
    monkeypatch.setattr(admin, "GRACE_SECONDS", 0.0)
    (entry,) = admin.cleanup(sessions=[session_id])
    assert not entry.removable and f"mapped by pids {os.getpid()}" in entry.reason
    table.close()  # unmapped, never unlinked: as if its processes had died
    (entry,) = admin.cleanup(sessions=[session_id])
    assert entry.removed and not Path(_shm.SHM_DIR, name).exists()
    table.unlink()  # already gone: a no-op


def test_cleanup_removes_a_segment_whose_remover_died(session_id, groups):
    process, child_pid = groups(session_id, "create")
    kill_group(process, child_pid)
    observer = open_observer(_shm.segment_name(session_id, "native_"))
    assert observer._retire()  # ... and the remover dies before unlinking
    observer.close()
    (entry,) = admin.cleanup(sessions=[session_id])
    assert entry.removed
