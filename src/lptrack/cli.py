"""The ``lptrack`` command line (also ``python -m lptrack``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__, admin, benchmark, envbench

#: ``--quick``: a smoke run of every algorithm, well under 30 s on 2 cores.
QUICK = dict(tasks=200, episodes_per_epoch=400, epochs=3)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _plain_text(docstring: str) -> str:
    """A docstring as --help shows it: without reStructuredText markup (``code``, :role:`x`)."""
    return re.sub(r"(?::\w+:)?`{1,2}([^`]+)`{1,2}", r"\1", docstring)


def _check_output_path(option: str, path: str) -> None:
    """Refuse, before a long run starts, an output path that cannot be written."""
    directory = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise ValueError(f"{option} {path}: is a directory; give a file name")
    if not os.path.isdir(directory):
        raise ValueError(f"{option} {path}: directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"{option} {path}: not writable")


def _epoch_seconds(text: str) -> float | None:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value or None


def _algorithm_list(text: str) -> tuple[str, ...]:
    names = tuple(a.strip() for a in text.split(",") if a.strip())
    unknown = [a for a in names if a not in envbench.ALGORITHMS]  # "none" only with --env
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"choose from {','.join(envbench.ALGORITHMS)}; got {text!r}"
        )
    return names


def _add_bench_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = benchmark.BenchConfig()
    p = subparsers.add_parser(
        "bench",
        help="time a trainer's episode loop: uniform vs learning progress, before and after",
        description=_plain_text(benchmark.__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tasks", type=_positive_int, default=None,
                   help=f"pool size (default {defaults.tasks})")
    p.add_argument("--episodes-per-epoch", type=_positive_int, default=None,
                   help=f"episodes per epoch, over all workers (default {defaults.episodes_per_epoch})")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help=f"epochs per algorithm (default {defaults.epochs})")
    p.add_argument("--epoch-seconds", type=_epoch_seconds, default=defaults.epoch_seconds, metavar="SECONDS",
                   help="end an epoch early after SECONDS of episodes; episodes/s is then over the episodes "
                        "run (default %(default)s, which only lp-python reaches; 0: no time limit)")
    p.add_argument("--workers", type=_positive_int, default=defaults.workers,
                   help="processes sharing one session (default %(default)s)")
    p.add_argument("--batch", type=_positive_int, default=defaults.batch,
                   help="perf_invalidation_batch_size of lp-native (default %(default)s)")
    p.add_argument("--min-samples-for-lp", type=_positive_int, default=defaults.min_samples_for_lp,
                   help="LP configs' min_samples_for_lp (default %(default)s, the config's; the "
                        "curriculum may evict a task from twice that many presentations)")
    p.add_argument("--algorithms", type=_algorithm_list, default=None,
                   help=f"comma list of {','.join(benchmark.ALGORITHMS)} (default: all), "
                        "and none with --env")
    p.add_argument("--seed", type=int, default=defaults.seed, help="default %(default)s")
    _add_steady_state_options(p, defaults)
    p.add_argument("--json", metavar="PATH", help="write config, per-epoch rows and summary as JSON")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of episodes/s per epoch (needs lptrack[plot])")
    p.add_argument("--quick", action="store_true",
                   help=f"a short smoke run ({QUICK['tasks']} tasks, {QUICK['episodes_per_epoch']} "
                        f"episodes x {QUICK['epochs']} epochs) unless those are given")
    p.add_argument("--env", metavar="ENV_ID",
                   help="run real steps of this gymnasium env (e.g. CartPole-v1) with random actions through "
                        "lptrack.gym, and report steps/s and episodes/s (needs lptrack[gym]; see envbench.py)")
    p.add_argument("--steps-per-epoch", type=_positive_int, default=None,
                   help=f"with --env: env steps per epoch, over all workers "
                        f"(default {envbench.EnvBenchConfig().steps_per_epoch})")
    p.set_defaults(func=_cmd_bench)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _add_steady_state_options(p: argparse.ArgumentParser, defaults: benchmark.BenchConfig) -> None:
    p.add_argument("--warm", type=_non_negative_int, default=defaults.warm, metavar="EPISODES_PER_TASK",
                   help="untimed episodes per pool slot before the first epoch: a mature pool, most of "
                        "whose tasks LP scores (default %(default)s: a young pool)")
    p.add_argument("--latency", action="store_true",
                   help="also time every get_task and update_task_performance call: p50, p99, max")
    p.add_argument("--batch-fraction", type=_fraction, default=defaults.batch_fraction,
                   help="perf_invalidation_batch_fraction of lp-native: a batch of at least this share "
                        "of the pool (default %(default)s; 0: --batch only)")


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.env is not None:
        return _cmd_env_bench(args)
    if args.steps_per_epoch is not None:
        raise ValueError("--steps-per-epoch applies to --env only")
    sized = {
        name: getattr(args, name)
        for name in ("tasks", "episodes_per_epoch", "epochs")
        if getattr(args, name) is not None
    }
    base = QUICK if args.quick else {}
    config = benchmark.BenchConfig(
        **{**base, **sized},
        workers=args.workers,
        batch=args.batch,
        min_samples_for_lp=args.min_samples_for_lp,
        algorithms=args.algorithms or benchmark.ALGORITHMS,
        seed=args.seed,
        warm=args.warm,
        latency=args.latency,
        batch_fraction=args.batch_fraction,
        epoch_seconds=args.epoch_seconds,
    )
    _check_outputs(args)
    result = benchmark.run_bench(config)
    return _report(args, result, benchmark.format_table(result), benchmark.write_plot)


SESSION_HELP = (
    "a session id: the session_id of the LearningProgressConfig the trainer's processes share "
    "(pass session_id=... when making the config, or print config.session_id), or a segment "
    "name as 'lptrack cleanup --dry-run' lists them"
)

INSPECT_DESCRIPTION = """\
Print a summary of a live pool: capacity, active tasks, counters, which process holds the
lock, the top tasks by learning-progress score and the tasks per label.

It only reads: it never takes the pool's lock and never counts as one of its users, so it
works while a process is stuck holding the lock, and never keeps a pool alive. Sessions of
the native engine (the default) can be inspected; 'lptrack cleanup --dry-run' lists every
lptrack session on this host."""

CLEANUP_DESCRIPTION = """\
Remove the shared memory of lptrack sessions that no running process uses any more.

A session's pool lives in a segment of /dev/shm until the process that created it closes
it; a trainer that was killed leaves it behind. cleanup removes such segments, and never
one that a running process uses, nor another user's. With --dry-run it only lists every
lptrack segment on this host and what would happen to it."""
def _cmd_env_bench(args: argparse.Namespace) -> int:
    if args.episodes_per_epoch is not None:
        raise ValueError("--env counts env steps: use --steps-per-epoch, not --episodes-per-epoch")
    if args.warm or args.latency:
        raise ValueError("--warm and --latency time the simulated episode loop: not with --env")
    sized = {
        name: getattr(args, name)
        for name in ("tasks", "steps_per_epoch", "epochs")
        if getattr(args, name) is not None
    }
    base = envbench.QUICK if args.quick else {}
    config = envbench.EnvBenchConfig(
        **{**base, **sized},
        env=args.env,
        workers=args.workers,
        batch=args.batch,
        min_samples_for_lp=args.min_samples_for_lp,
        algorithms=args.algorithms or envbench.ALGORITHMS,
        seed=args.seed,
        batch_fraction=args.batch_fraction,
    )
    envbench.require_gymnasium()
    _check_outputs(args)
    result = envbench.run_env_bench(config)
    return _report(args, result, envbench.format_table(result), envbench.write_plot)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse unwritable --json/--plot paths (and --plot without matplotlib) before a long run."""
    if args.json:
        _check_output_path("--json", args.json)
    if args.plot:
        _check_output_path("--plot", args.plot)
        benchmark.require_matplotlib()


def _report(args: argparse.Namespace, result: Any, table: str, write_plot: Callable[[Any, str], None]) -> int:
    """Print a bench's table, then write its --json and --plot outputs."""
    print(table)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result.to_json(), f, indent=2)
    if args.plot:
        write_plot(result, args.plot)
    return 0


def _add_admin_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="print a live, read-only summary of a session's pool",
        description=INSPECT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("session", metavar="SESSION", help=SESSION_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--top", type=_non_negative_int, default=10, metavar="N",
                   help="list the N tasks of highest learning-progress score (default %(default)s; 0: none)")
    p.set_defaults(func=_cmd_inspect)
    p = subparsers.add_parser(
        "cleanup",
        help="remove lptrack segments that no live process uses",
        description=CLEANUP_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sessions", nargs="*", metavar="SESSION",
                   help="only these sessions: session ids (a LearningProgressConfig's session_id) or segment "
                        "names (default: every lptrack segment on this host)")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_cleanup)


def _cmd_inspect(args: argparse.Namespace) -> int:
    summary = admin.inspect(args.session, top=args.top)
    print(json.dumps(summary, indent=2) if args.json else admin.format_inspect(summary, top=args.top))
    return 0


def _cmd_cleanup(args: argparse.Namespace) -> int:
    entries = admin.cleanup(dry_run=args.dry_run, sessions=args.sessions or None)
    if args.json:
        print(json.dumps([dataclasses.asdict(entry) for entry in entries], indent=2))
    else:
        print(admin.format_cleanup(entries, args.dry_run))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lptrack",
        description="lptrack: a fast, multi-process learning-progress curriculum tracker",
    )
    parser.add_argument("--version", action="version", version=f"lptrack {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_bench_parser(subparsers)
    _add_admin_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a reader gone away shows here, inside this try
        return code
    except BrokenPipeError:
        # The reader closed the pipe (lptrack inspect ... | head): stop quietly, as a
        # command killed by SIGPIPE does, and point stdout at /dev/null so that the
        # interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"lptrack {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
