"""`lptrack bench --env`: real gymnasium steps through lptrack.gym; its options and errors."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lptrack import cli, envbench

TINY = ["bench", "--env", "CartPole-v1", "--tasks", "20", "--steps-per-epoch", "400", "--epochs", "2"]


def test_import_lptrack_needs_no_gymnasium() -> None:
    code = (
        "import sys, lptrack, lptrack.cli, lptrack.envbench; "
        "assert 'gymnasium' not in sys.modules, 'lptrack imported gymnasium'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_without_gymnasium_the_errors_say_what_to_install(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium now fails
    monkeypatch.delitem(sys.modules, "lptrack.gym", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'lptrack\[gym\]'"):
        importlib.import_module("lptrack.gym")
    assert cli.main([*TINY, "--quick"]) == 2
    assert "pip install 'lptrack[gym]'" in capsys.readouterr().err


def test_env_bench_reports_steps_and_episodes_per_algorithm_and_epoch(tmp_path: Path, capsys) -> None:
    pytest.importorskip("gymnasium")
    out = tmp_path / "env.json"
    assert cli.main([*TINY, "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "steps per second" in captured.out and "episodes per second" in captured.out
    assert "steps/s vs discrete" in captured.out
    report = json.loads(out.read_text())
    assert report["config"]["env"] == "CartPole-v1" and report["config"]["algorithms"] == list(envbench.ALGORITHMS)
    rows = report["rows"]
    assert sorted((r["algorithm"], r["epoch"]) for r in rows) == sorted(
        (a, e) for a in envbench.ALGORITHMS for e in range(2)
    )
    for row in rows:
        assert row["steps"] == 400 and row["episodes"] > 0
        assert row["steps_per_second"] == pytest.approx(row["steps"] / row["seconds"])
    turns = report["turns"]  # every algorithm's turn in every round, interleaved
    assert len(turns) == len(envbench.ALGORITHMS) * 2 * envbench.ROUNDS_PER_EPOCH
    for row in rows:
        mine = [t for t in turns if (t["algorithm"], t["epoch"]) == (row["algorithm"], row["epoch"])]
        assert sum(t["steps"] for t in mine) == row["steps"] and sum(t["episodes"] for t in mine) == row["episodes"]
    summary = report["summary"]
    assert set(summary) == set(envbench.ALGORITHMS)
    assert summary["lp-native"]["steps_ratio_vs_discrete"] > 0
    assert summary["discrete"]["steps_ratio_vs_none"] > 0


def test_env_bench_with_workers_runs_a_vector_env(tmp_path: Path) -> None:
    pytest.importorskip("gymnasium")
    out = tmp_path / "workers.json"
    args = [*TINY, "--workers", "2", "--algorithms", "none,lp-native", "--json", str(out)]
    assert cli.main(args) == 0
    rows = json.loads(out.read_text())["rows"]
    assert sorted(r["algorithm"] for r in rows) == ["lp-native", "lp-native", "none", "none"]
    # Each vector step is one real env step in each of the 2 workers (same-step autoreset).
    assert all(r["steps"] == 400 and r["episodes"] > 0 for r in rows)


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "--algorithms", "none"], "algorithms must be"),
        (["bench", "--steps-per-epoch", "100"], "--env only"),
        ([*TINY, "--episodes-per-epoch", "100"], "--steps-per-epoch"),
        ([*TINY, "--steps-per-epoch", "5"], "steps_per_epoch must be >="),
        ([*TINY, "--warm", "3"], "not with --env"),
    ],
)
def test_bench_options_that_do_not_fit_are_refused(args, message, capsys) -> None:
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


def test_an_unknown_env_is_refused(capsys) -> None:
    pytest.importorskip("gymnasium")
    assert cli.main(["bench", "--env", "NoSuchEnv-v0", "--quick"]) == 2
    assert "unknown gymnasium env 'NoSuchEnv-v0'" in capsys.readouterr().err


def test_env_bench_plot_writes_a_png_or_says_what_is_missing(tmp_path: Path, capsys) -> None:
    pytest.importorskip("gymnasium")
    png = tmp_path / "env.png"
    rc = cli.main([*TINY, "--algorithms", "none,discrete", "--plot", str(png)])
    if importlib.util.find_spec("matplotlib") is None:
        assert rc == 2 and not png.exists()
        assert "pip install 'lptrack[plot]'" in capsys.readouterr().err
    else:
        assert rc == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
