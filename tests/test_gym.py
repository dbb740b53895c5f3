"""lptrack.gym with real vector envs: 4 AsyncVectorEnv workers over CartPole variants share one pool.

Each test is parametrized over fork and spawn.  The pools never evict (a fixed
task set, or a generated pool whose ``min_presentations_for_eviction`` is out of
reach), so every score a worker reports stays in a completion count that the
main process reads with ``Curriculum.pool_stats``.
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

gymnasium = pytest.importorskip("gymnasium")

from lptrack import Curriculum, LearningProgressConfig, admin, cli  # noqa: E402
# CartPole variants: a task sets the pole's half-length, gravity and push force.
from lptrack.envbench import apply_cartpole_task as apply_task  # noqa: E402
from lptrack.envbench import cartpole_task as make_task  # noqa: E402
from lptrack.gym import ClippedReturn, CurriculumWrapper, Episode  # noqa: E402

WORKERS = 4
POOL = 8
#: Every wait of these tests (a vector step, a subprocess) gives up after this long.
TIMEOUT = 120
NEVER_EVICT = 10**9
LABELS = ("short_pole", "long_pole")


def make_env(make_curriculum) -> CurriculumWrapper:
    return CurriculumWrapper(gymnasium.make("CartPole-v1"), make_curriculum, apply_task, ClippedReturn(0.0, 500.0))


def curriculum_factory(session_id: str, fixed: bool = False) -> functools.partial:
    """Curriculum(...) on the session: a fixed set of POOL CartPole variants, or a generated pool."""
    config = LearningProgressConfig(session_id=session_id)
    if fixed:
        return functools.partial(Curriculum, config, tasks=POOL, task_factory=make_task)
    return functools.partial(
        Curriculum, config, num_active_tasks=POOL, task_factory=make_task,
        min_presentations_for_eviction=NEVER_EVICT,
    )


def pool_counts(curriculum: Curriculum) -> dict[int, int]:
    """Completion count of every task in the pool (all processes' scores), by task id."""
    stats = curriculum.pool_stats(top=POOL)
    return {
        int(stats[f"pool/top/{rank}/task_id"]): int(stats[f"pool/top/{rank}/completions"])
        for rank in range(1, int(stats["pool/tasks"]) + 1)
    }


@pytest.fixture(params=["fork", "spawn"])
def context(request) -> str:
    return request.param


def run_steps(envs, steps: int, ended: Counter) -> None:
    """Step ``envs`` with random actions; count each ended episode under its task id."""
    for _ in range(steps):
        envs.step_async(envs.action_space.sample())
        _, _, terminated, truncated, info = envs.step_wait(timeout=TIMEOUT)
        done = terminated | truncated
        assert (info.get("_task_score", done) == done).all()  # a score with every ended episode
        for worker in done.nonzero()[0]:
            ended[int(info["task_id"][worker])] += 1


def close_broken(envs) -> None:
    """SIGTERM the workers of a vector env one of whose workers died (gymnasium's own
    close would first wait on the dead worker's pipe), then mark it closed."""
    for process in envs.processes:
        if process.is_alive():
            process.terminate()
    for process in envs.processes:
        process.join(TIMEOUT)
        assert process.exitcode is not None, f"worker {process.pid} did not end"
    for pipe in envs.parent_pipes:
        pipe.close()
    envs.closed = True


# -- one env, in this process -------------------------------------------------------------------
def test_wrapper_applies_tasks_and_reports_scores(session_id):
    seen: list[Episode] = []

    def score(episode: Episode) -> float:
        seen.append(episode)
        return 0.25

    make_curriculum = curriculum_factory(session_id)
    with make_curriculum() as pool:
        env = CurriculumWrapper(gymnasium.make("CartPole-v1"), make_curriculum, apply_task, score)
        try:
            for episode in range(3):
                _, info = env.reset(seed=episode)
                task = env.task
                assert info["task_id"] == task.task_id
                assert info["task_label"] == task.label == make_task(task.task_id)["label"]
                assert env.unwrapped.length == make_task(task.task_id)["length"]
                assert env.unwrapped.gravity == make_task(task.task_id)["gravity"]
                assert env.unwrapped.force_mag == make_task(task.task_id)["force_mag"]
                steps, done = 0, False
                while not done:
                    _, _, terminated, truncated, info = env.step(env.action_space.sample())
                    steps += 1
                    done = terminated or truncated
                assert info["task_id"] == task.task_id and info["task_score"] == 0.25
                assert env.task is None
                assert seen[-1].task is task and seen[-1].length == steps
                assert seen[-1].episode_return == float(steps)  # CartPole: reward 1 per step
            # The main process's pool holds the wrapper's three scores.
            assert sum(pool_counts(pool).values()) == 3
        finally:
            env.close()
        assert sum(pool_counts(pool).values()) == 3  # closing the wrapper only detached


def test_clipped_return_maps_the_bounds_onto_0_1():
    def episode(episode_return: float) -> Episode:
        return Episode(None, episode_return, 1, True, False, {})

    score = ClippedReturn(0.0, 500.0)
    assert [score(episode(r)) for r in (-5.0, 0.0, 125.0, 500.0, 900.0)] == [0.0, 0.0, 0.25, 1.0, 1.0]
    assert ClippedReturn()(episode(0.5)) == 0.5
    with pytest.raises(ValueError, match="low < high"):
        ClippedReturn(1.0, 1.0)


def test_bad_arguments_are_refused(session_id):
    make_curriculum = curriculum_factory(session_id)
    env = gymnasium.make("CartPole-v1")
    with make_curriculum() as pool:
        with pytest.raises(TypeError, match="picklable callable"):
            CurriculumWrapper(env, pool, apply_task)
        with pytest.raises(TypeError, match="apply_task"):
            CurriculumWrapper(env, make_curriculum, None)
        wrapper = CurriculumWrapper(env, make_curriculum, apply_task, lambda episode: float("nan"))
        try:
            wrapper.reset(seed=0)
            with pytest.raises(ValueError, match="finite"):
                for _ in range(600):
                    wrapper.step(0)
            assert sum(pool_counts(pool).values()) == 0
        finally:
            wrapper.close()


# -- 4 workers ----------------------------------------------------------------------------------
def test_every_score_reaches_one_shared_pool(session_id, context, capsys):
    make_curriculum = curriculum_factory(session_id)
    with make_curriculum() as pool:
        envs = gymnasium.vector.AsyncVectorEnv(
            [functools.partial(make_env, make_curriculum)] * WORKERS, context=context
        )
        ended: Counter = Counter()
        try:
            _, info = envs.reset(seed=0)
            assert info["_task_id"].all() and set(info["task_label"]) <= set(LABELS)
            run_steps(envs, 150, ended)
            assert sum(ended.values()) >= WORKERS  # random CartPole episodes last ~20 steps
            counts = pool_counts(pool)
            # Every ended episode's score is in the pool, under its task, whichever
            # worker ran it; the tasks workers made are the main process's pool.
            assert {t: c for t, c in counts.items() if c} == dict(ended)
            assert len(counts) == POOL

            assert cli.main(["inspect", session_id, "--json"]) == 0
            summary = json.loads(capsys.readouterr().out)
            assert summary["active_tasks"] == len(counts)
            assert sum(entry["completions"] for entry in summary["labels"].values()) == sum(ended.values())
            stats = pool.pool_stats()
            assert {label: entry["completions"] for label, entry in summary["labels"].items()} == {
                label: stats[f"pool/label/{label}/completions"] for label in summary["labels"]
            }
            worker_pids = {p.pid for p in envs.processes}
            assert worker_pids | {os.getpid()} <= set(summary["live_pids"])
        finally:
            envs.close()
        # The workers detached when their envs closed; the pool stays the main process's.
        assert set(admin.inspect(session_id)["live_pids"]) == {os.getpid()}
        assert sum(pool_counts(pool).values()) == sum(ended.values())


def test_a_killed_worker_leaves_the_pool_consistent_and_usable(session_id, context):
    make_curriculum = curriculum_factory(session_id, fixed=True)
    with make_curriculum() as pool:
        envs = gymnasium.vector.AsyncVectorEnv(
            [functools.partial(make_env, make_curriculum)] * WORKERS, context=context
        )
        ended: Counter = Counter()
        try:
            envs.reset(seed=0)
            run_steps(envs, 60, ended)
            envs.step_async(envs.action_space.sample())
            victim = envs.processes[1]
            os.kill(victim.pid, signal.SIGKILL)  # mid-step: wherever the worker is
            victim.join(TIMEOUT)
            assert victim.exitcode == -signal.SIGKILL
        finally:
            close_broken(envs)  # SIGTERMs the other workers, also mid-step
        seen = sum(ended.values())
        counts = pool_counts(pool)
        assert sorted(counts) == list(range(1, POOL + 1))
        # The step in flight ended at most one episode per worker; nothing else is lost or doubled.
        assert seen <= sum(counts.values()) <= seen + WORKERS
        assert all(counts[t] >= c for t, c in ended.items())

        # The main process goes on with the pool: its own draws and updates...
        task = pool.get_task()
        before = pool_counts(pool)[task.task_id]
        pool.update_task_performance(task.task_id, 0.5)
        assert pool_counts(pool)[task.task_id] == before + 1
        summary = admin.inspect(session_id)
        assert summary["lock_holder_pid"] is None
        # ...and new workers on the same pool, whose every score arrives.
        before = pool_counts(pool)
        envs = gymnasium.vector.AsyncVectorEnv(
            [functools.partial(make_env, make_curriculum)] * 2, context=context
        )
        ended = Counter()
        try:
            envs.reset(seed=1)
            run_steps(envs, 60, ended)
        finally:
            envs.close()
        after = pool_counts(pool)
        assert {t: after[t] - before[t] for t in after if after[t] != before[t]} == dict(ended)


# -- a training script that exits, or is interrupted ---------------------------------------------
TRAIN = textwrap.dedent(
    """
    import functools, sys
    import gymnasium
    from lptrack import Curriculum, LearningProgressConfig
    from lptrack.gym import ClippedReturn, CurriculumWrapper

    def apply_task(env, task):
        env.unwrapped.length = task.env_cfg

    def make_env(make_curriculum):
        return CurriculumWrapper(gymnasium.make("CartPole-v1"), make_curriculum, apply_task, ClippedReturn(0, 500))

    if __name__ == "__main__":
        session_id, context, steps, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "wait"
        config = LearningProgressConfig(num_active_tasks=16, session_id=session_id)
        make_curriculum = functools.partial(Curriculum, config, num_active_tasks=16,
                                            task_factory=lambda task_id: 0.25 + task_id % 8 / 10)
        with make_curriculum() as pool:
            envs = gymnasium.vector.AsyncVectorEnv([functools.partial(make_env, make_curriculum)] * 4,
                                                   context=context)
            try:
                envs.reset(seed=0)
                for step in range(steps):
                    envs.step(envs.action_space.sample())
                    if step == 20:
                        print("ready", flush=True)
                        if wait:  # until the test has seen the pool
                            sys.stdin.readline()
            finally:
                envs.close()
    """
)


def segments_of(session_id: str) -> list[str]:
    return sorted(name for name in os.listdir("/dev/shm") if name.endswith(session_id))


@pytest.mark.parametrize("ending", ["exit", "sigint"])
def test_nothing_is_left_in_dev_shm(session_id, context, ending, tmp_path: Path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    steps, wait = (50, "wait") if ending == "exit" else (10**7, "run")
    # A new session, so that SIGINT reaches the script and its workers as Ctrl-C would;
    # SIGINT's default action restored, as in a terminal (a background job ignores it).
    process = subprocess.Popen(
        [sys.executable, str(script), session_id, context, str(steps), wait],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL),
    )
    try:
        readable, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        assert readable and process.stdout.readline() == "ready\n", process.stderr.read()
        assert segments_of(session_id)  # the pool exists while the script trains
        if ending == "sigint":
            os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate("go\n", timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(TIMEOUT)
    if ending == "exit":
        assert process.returncode == 0, stderr
    else:
        assert process.returncode != 0 and "KeyboardInterrupt" in stderr
    assert "leaked shared_memory" not in stderr
    assert segments_of(session_id) == []
