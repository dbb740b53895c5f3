"""`lptrack bench`: options, the stdout table, progress on stderr, --json, --plot, errors."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lptrack import _shm, cli
from lptrack.benchmark import ALGORITHMS

TINY = ["bench", "--tasks", "20", "--episodes-per-epoch", "60", "--epochs", "2"]


def _bench_segments() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if name.startswith(_shm.SEGMENT_PREFIX)}


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


def test_bench_with_workers_shares_one_session_and_leaves_nothing(tmp_path: Path) -> None:
    before = _bench_segments()
    out = tmp_path / "workers.json"
    rc = cli.main([*TINY, "--workers", "2", "--algorithms", "lp-native", "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert [row["algorithm"] for row in rows] == ["lp-native", "lp-native"]
    assert _bench_segments() == before


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
    [["--tasks", "0"], ["--algorithms", "lp-rust"], ["--epochs", "x"], ["--workers", "-1"]],
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
