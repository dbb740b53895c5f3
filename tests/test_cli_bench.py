"""`lptrack bench`: options, the stdout table, progress on stderr, --json, --plot, errors."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lptrack import Curriculum, _shm, benchmark, cli
from lptrack.benchmark import ALGORITHMS

TINY = ["bench", "--tasks", "20", "--episodes-per-epoch", "60", "--epochs", "2"]


def test_bench_reports_every_algorithm_and_epoch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert cli.main([*TINY, "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "episodes per second" in captured.out
    assert "cost vs discrete" in captured.out
    progress = [line for line in captured.err.splitlines() if " episodes/s" in line]
    assert len(progress) == 2 * len(ALGORITHMS)  # one line per algorithm and epoch
    report = json.loads(out.read_text())
    assert report["config"]["tasks"] == 20 and report["config"]["algorithms"] == list(ALGORITHMS)
    rows = report["rows"]
    assert [(row["algorithm"], row["epoch"]) for row in rows] == [(a, e) for a in ALGORITHMS for e in range(2)]
    for row in rows:
        assert row["episodes"] == 60 and row["episodes_per_second"] > 0
    summary = report["summary"]
    for algorithm in ("lp-python", "lp-native"):
        assert summary[algorithm]["cost_vs_discrete"] > 0
    assert summary["lp-native"]["speedup_vs_lp_python"] > 0


def test_bench_with_workers_shares_one_session_and_leaves_nothing(
    session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's one session is the fixture's, so only its segments are looked at: other
    programs' sessions come and go on the host meanwhile."""
    sessions_made: list[str] = []

    def one_known_session() -> str:
        sessions_made.append(session_id)
        return session_id

    monkeypatch.setattr(benchmark, "new_session_id", one_known_session)
    segments_after_each_epoch: list[list[str]] = []

    def progress(line: str) -> None:
        if " episodes/s" in line:
            segments_after_each_epoch.append(_session_segments(session_id))

    config = benchmark.BenchConfig(tasks=20, episodes_per_epoch=60, epochs=2, workers=2, algorithms=("lp-native",))
    result = benchmark.run_bench(config, progress)
    assert [(row.algorithm, row.episodes) for row in result.rows] == [("lp-native", 60)] * 2
    assert sessions_made == [session_id]  # both workers on one session ...
    assert len(segments_after_each_epoch) == 2 and all(segments_after_each_epoch)  # ... alive through the run
    assert not _session_segments(session_id)


def _session_segments(session_id: str) -> list[str]:
    return [name for name in os.listdir("/dev/shm") if name.startswith(_shm.SEGMENT_PREFIX) and name.endswith(session_id)]


# -- the time limit of an epoch ------------------------------------------------------------------
#: Shorter than any chunk of episodes can take: every limited epoch runs exactly its first chunk.
NO_TIME = 1e-9


def test_an_epoch_ends_at_its_time_limit_and_its_rate_is_over_the_episodes_run() -> None:
    config = benchmark.BenchConfig(tasks=20)
    with Curriculum(
        benchmark.make_curriculum_config("lp-native", config, None), num_active_tasks=20, seed=0
    ) as curriculum:
        agent = benchmark.SimulatedAgent(0)
        episodes, seconds = benchmark.run_episodes_within(curriculum, agent, 1000, NO_TIME)
        assert episodes == benchmark.FIRST_CHUNK_EPISODES and seconds > NO_TIME
        assert benchmark.run_episodes_within(curriculum, agent, 1000, None)[0] == 1000
        assert curriculum.stats()["process/episodes"] == 1000 + benchmark.FIRST_CHUNK_EPISODES


@pytest.mark.parametrize("workers", [1, 2])
def test_bench_reports_epochs_cut_by_the_time_limit(
    workers: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    args = [*TINY, "--algorithms", "lp-python", "--workers", str(workers), "--epoch-seconds", str(NO_TIME)]
    assert cli.main([*args, "--json", str(out)]) == 0
    captured = capsys.readouterr()
    chunk = benchmark.FIRST_CHUNK_EPISODES
    rows = json.loads(out.read_text())["rows"]
    assert [row["episodes"] for row in rows] == [workers * chunk] * 2  # each worker ran one chunk
    for row in rows:
        assert row["episodes_per_second"] == pytest.approx(row["episodes"] / row["seconds"])
    assert captured.err.count("(time limit)") == 2
    assert f"2 epoch(s) ended by the time limit after {workers * chunk}-{workers * chunk} episodes" in captured.out


def test_bench_without_a_time_limit_runs_every_episode(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert cli.main([*TINY, "--algorithms", "lp-python", "--epoch-seconds", "0", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["config"]["epoch_seconds"] is None
    assert [row["episodes"] for row in report["rows"]] == [60, 60]


def test_bench_config_refuses_a_bad_time_limit() -> None:
    for bad in (0, -1.0, math.inf, math.nan, True, "10"):
        with pytest.raises(ValueError, match="epoch_seconds"):
            benchmark.BenchConfig(epoch_seconds=bad)


def test_bench_plot_writes_a_png_or_says_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "bench.png"
    rc = cli.main([*TINY, "--algorithms", "discrete", "--plot", str(png)])
    if importlib.util.find_spec("matplotlib") is None:
        assert rc == 2 and not png.exists()
        assert "pip install 'lptrack[plot]'" in capsys.readouterr().err
    else:
        assert rc == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args",
    [["--tasks", "0"], ["--algorithms", "lp-rust"], ["--epochs", "x"], ["--workers", "-1"],
     ["--epoch-seconds", "-1"], ["--epoch-seconds", "inf"], ["--epoch-seconds", "nan"]],
)
def test_bench_refuses_bad_options(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", *args])
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_console_script_and_module_agree() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lptrack", *TINY, "--algorithms", "discrete"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("episodes per second")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_bench_warms_the_pool_and_reports_call_latency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    out = tmp_path / "latency.json"
    rc = cli.main([*TINY, "--algorithms", "discrete,lp-native", "--warm", "3", "--latency",
                   "--batch-fraction", "0.5", "--workers", workers, "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "per-call latency" in printed and "longest lock wait" in printed
    report = json.loads(out.read_text())
    assert report["config"]["warm"] == 3 and report["config"]["batch_fraction"] == 0.5
    for algorithm in ("discrete", "lp-native"):
        latency = report["latency"][algorithm]
        for call in ("get_task", "update"):
            summary = latency[call]
            assert summary["calls"] == 2 * 60  # every call of every worker, both epochs
            assert 0 < summary["p50_us"] <= summary["p99_us"] <= summary["max_us"]
        if algorithm == "discrete":  # no shared table, no lock
            assert latency["longest_lock_wait_us"] is None
        else:
            assert latency["longest_lock_wait_us"] >= 0 and latency["longest_pass_hold_us"] >= 0


@pytest.mark.parametrize("args", [["--warm", "-1"], ["--batch-fraction", "1.5"]])
def test_bench_refuses_bad_steady_state_options(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", *args])
    assert exit_info.value.code == 2
