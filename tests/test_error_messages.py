"""Errors and warnings that say what to do: the command line's (a missing session, a closed
pipe, unwritable output paths, help texts), attaching to a session with another capacity,
a malformed checkpoint, and scores outside [0, 1]."""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import random
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import lptrack
from lptrack import (
    Curriculum,
    CurriculumTask,
    DiscreteRandomCurriculumConfig,
    LearningProgressConfig,
    NullStatsLogger,
    algorithm,
    cli,
    create_task_tracker,
)
from lptrack._native import NativeTable
from lptrack._pytable import PythonTable
from lptrack.errors import LayoutMismatchError, ScoreRangeWarning

TIMEOUT = 60


# -- lptrack inspect ----------------------------------------------------------------------------
def test_inspect_of_a_missing_session_says_so_and_how_to_list_sessions(
    session_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["inspect", session_id]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lptrack inspect: error: no session '{session_id}' on this host")
    assert "'lptrack cleanup --dry-run' lists the lptrack sessions" in err
    assert "Errno" not in err and len(err.splitlines()) == 1


def test_inspect_of_a_python_engine_session_says_why_it_cannot(
    session_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    table = PythonTable(4, session_id=session_id)
    try:
        assert cli.main(["inspect", session_id]) == 2
        assert "runs on the pure-Python engine (engine='python')" in capsys.readouterr().err
    finally:
        table.close()
        table.unlink()


@pytest.fixture
def native_session(session_id: str):
    table = NativeTable(8, session_id=session_id)
    for task_id in (1, 2, 3):
        table.claim(task_id, 0.0, 0.5, 0.0, 0.0)
    yield session_id
    table.close()
    table.unlink()


def test_inspect_accepts_top_0(native_session: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", native_session, "--top", "0"]) == 0
    out = capsys.readouterr().out
    assert "tasks        3 / 8" in out and "top tasks" not in out
    assert cli.main(["inspect", native_session, "--top", "0", "--json"]) == 0
    assert '"top_tasks": []' in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        cli.main(["inspect", native_session, "--top", "-1"])
    assert refused.value.code == 2


@pytest.mark.parametrize(
    "command", [["inspect", "{session}"], ["inspect", "{session}", "--json"], ["cleanup", "--dry-run", "{session}"]]
)
def test_output_into_a_closed_pipe_ends_quietly(native_session: str, command: list[str]) -> None:
    """`lptrack inspect ... | head` once head has gone: no traceback, no message."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the command writes: its first write meets EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-W", "error", "-m", "lptrack", *(a.format(session=native_session) for a in command)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 1  # as Python's own recipe for a closed pipe


# -- lptrack bench: output paths checked before the run ------------------------------------------
@pytest.mark.parametrize("option", ["--json", "--plot"])
@pytest.mark.parametrize(
    ("where", "says"), [("missing/out.file", "directory '{tmp}/missing' does not exist"), (".", "is a directory")]
)
def test_bench_refuses_an_unwritable_output_path_before_running(
    option: str, where: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / where
    rc = cli.main(["bench", "--quick", "--algorithms", "discrete", option, str(path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"lptrack bench: error: {option} {path}: {says.format(tmp=tmp_path)}")
    assert "episodes/s" not in err  # nothing ran


# -- --version and --help ------------------------------------------------------------------------
def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"lptrack {lptrack.__version__}\n"
    assert importlib.metadata.version("lptrack") == lptrack.__version__


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """``lptrack`` and each of its subcommands."""
    parser = cli.build_parser()
    (subcommands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"lptrack": parser, **{f"lptrack {name}": sub for name, sub in subcommands.choices.items()}}


def test_help_texts_are_plain_text_for_users() -> None:
    parsers = _parsers()
    assert {"lptrack bench", "lptrack inspect", "lptrack cleanup"} <= set(parsers)
    for command, parser in parsers.items():
        text = parser.format_help()
        assert "`" not in text, f"{command} --help shows reStructuredText markup"
        assert not re.search(r":\w+:", text), f"{command} --help shows a reStructuredText role"
        written = " ".join([parser.description or "", *(action.help or "" for action in parser._actions)])
        assert not re.search(r"lptrack\._|csrc/|\w\.h\b|\b[A-Z]+_[A-Z_]+\b", written), (
            f"{command} --help names the implementation (a module path, a C file or a constant)"
        )
    for command in ("lptrack inspect", "lptrack cleanup"):
        assert "session_id" in parsers[command].format_help()  # where a session id comes from


# -- attaching with another capacity -------------------------------------------------------------
@pytest.mark.parametrize("engine", ["native", "python"])
def test_attaching_with_another_capacity_says_what_the_session_has_and_what_to_do(
    engine: str, session_id: str
) -> None:
    def config(capacity: int) -> LearningProgressConfig:
        return LearningProgressConfig(
            num_active_tasks=capacity, use_shared_memory=True, session_id=session_id, engine=engine
        )

    live = config(100).create(100, NullStatsLogger())
    try:
        live.on_task_created(CurriculumTask(7, None))
        with pytest.raises(ValueError) as refused:  # LayoutMismatchError is a ValueError, as before
            config(50).create(50, NullStatsLogger())
        assert isinstance(refused.value, LayoutMismatchError)
        assert str(refused.value) == (
            f"session '{session_id}' has 100 task slots where this process asked for 50: open it with "
            "num_active_tasks=100 as its other processes do, or use another session_id for a separate pool"
        )
        assert refused.value.__cause__ is None and refused.value.__suppress_context__
        assert live.task_tracker.get_all_tracked_tasks() == [7]  # the live session is unchanged
        with pytest.raises(LayoutMismatchError, match="num_active_tasks=100"):
            Curriculum(config(50), num_active_tasks=50)
        with pytest.raises(LayoutMismatchError, match="num_active_tasks=100"):
            create_task_tracker(50, use_shared_memory=True, _session_id=session_id, engine=engine)
    finally:
        live.cleanup_shared_memory()


# -- a malformed checkpoint ----------------------------------------------------------------------
GOOD_STATE = random.Random(1).getstate()


@pytest.mark.parametrize(
    "rng_state",
    [
        None,
        "not a state",
        [3, [1, 2, 3], None],  # too short
        [3, [*GOOD_STATE[1][:-1], "x"], None],  # not an int
        [3, [*GOOD_STATE[1][:-1], 2**80], None],  # not a 32-bit word
        [99, list(GOOD_STATE[1]), None],  # another version
        [3, 7, None],
    ],
    ids=["none", "string", "short", "str-word", "huge-word", "version", "int"],
)
@pytest.mark.parametrize("config", [DiscreteRandomCurriculumConfig(), LearningProgressConfig(engine="native", use_shared_memory=False)],
                         ids=["discrete", "lp"])
def test_a_malformed_rng_state_is_refused_naming_it_and_changes_nothing(rng_state, config) -> None:
    with Curriculum(config, num_active_tasks=6, seed=3) as curriculum, \
            Curriculum(config, num_active_tasks=6, seed=3) as twin:
        for played in (curriculum, twin):
            for _ in range(20):
                played.update_task_performance(played.get_task()._task_id, 0.5)
        state = curriculum.get_state()
        checkpoint = {**curriculum.get_state(), "rng_state": rng_state, "episodes": 999}
        with pytest.raises(ValueError, match=r"curriculum checkpoint has a malformed 'rng_state'"):
            curriculum.load_state(checkpoint)
        assert curriculum.get_state() == state
        assert [curriculum.get_task()._task_id for _ in range(10)] == [twin.get_task()._task_id for _ in range(10)]


def test_a_json_round_tripped_rng_state_is_still_accepted() -> None:
    with Curriculum(num_active_tasks=6, seed=3) as curriculum:
        state = curriculum.get_state()
        as_json = {**state, "rng_state": [state["rng_state"][0], list(state["rng_state"][1]), None]}
        curriculum.load_state(as_json)
        assert curriculum.get_state() == state


# -- scores outside [0, 1] -----------------------------------------------------------------------
@pytest.fixture(params=["python", "native"])
def lp_algorithm(request: pytest.FixtureRequest):
    config = LearningProgressConfig(num_active_tasks=4, engine=request.param)
    algo = config.create(4, NullStatsLogger())
    for task_id in (1, 2):
        algo.on_task_created(CurriculumTask(task_id, None))
    yield algo
    algo.cleanup_shared_memory()


def _score_warnings(call) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [w for w in caught if issubclass(w.category, ScoreRangeWarning)]


def test_a_score_outside_0_1_is_used_and_warned_of_once_per_process(lp_algorithm) -> None:
    with pytest.warns(ScoreRangeWarning, match=r"^score 1\.5 is outside \[0, 1\], the range of success rates") as caught:
        lp_algorithm.update_task_performance(1, 1.5)
    assert caught[0].filename == __file__  # points at the caller
    assert lp_algorithm.task_tracker.get_task_stats(1)["last_score"] == 1.5  # accepted, as the original did
    assert _score_warnings(lambda: lp_algorithm.update_task_performance(2, -0.5)) == []  # once per process
    assert lp_algorithm.task_tracker.get_task_stats(2)["last_score"] == -0.5
    assert issubclass(ScoreRangeWarning, UserWarning)


def test_scores_in_0_1_and_refused_scores_are_not_warned_of(lp_algorithm) -> None:
    for score in (0.0, 0.5, 1.0, 0, 1):  # a warning would fail this test (filterwarnings = error)
        lp_algorithm.update_task_performance(1, score)
    for score in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            lp_algorithm.update_task_performance(1, score)


def test_a_late_score_outside_0_1_is_still_warned_of(lp_algorithm) -> None:
    with pytest.warns(ScoreRangeWarning, match=r"score 7"):
        lp_algorithm.update_task_performance(3, 7)  # task 3 was never tracked
    assert lp_algorithm.stats()["late_updates"] == 1


def test_another_process_warns_again(lp_algorithm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(algorithm, "_score_range_warned_pid", os.getpid())  # this process has warned
    assert _score_warnings(lambda: lp_algorithm.update_task_performance(1, 2.0)) == []
    monkeypatch.setattr(algorithm, "_score_range_warned_pid", os.getpid() + 1)  # as inherited by a fork
    assert len(_score_warnings(lambda: lp_algorithm.update_task_performance(1, 2.0))) == 1


def test_the_uniform_baseline_warns_of_a_score_outside_0_1_too() -> None:
    with Curriculum(DiscreteRandomCurriculumConfig(), num_active_tasks=3, seed=0) as curriculum:
        task_id = curriculum.get_task()._task_id
        with pytest.warns(ScoreRangeWarning, match=r"score -1\.0 is outside \[0, 1\]"):
            curriculum.update_task_performance(task_id, -1.0)
        assert curriculum.stats()["process/mean_score"] == -1.0
