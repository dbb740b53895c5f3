"""gymnasium integration: a wrapper that draws each episode's task from a shared curriculum.

``CurriculumWrapper`` wraps one environment.  At every ``reset`` it takes the
next task from its curriculum and applies it to the environment through a user
function; when the episode ends (terminated or truncated) it reports the
episode's score to the curriculum.  Vector environments build one wrapper per
worker process, and each wrapper builds its own ``Curriculum`` lazily, inside
the worker, from a picklable factory, so the same code runs under
``AsyncVectorEnv(context="fork")`` and ``context="spawn"``.  Every worker whose
factory names the same ``LearningProgressConfig`` (its ``session_id`` is fixed
when the config is made) shares one pool with the main process, which reads the
whole pool's statistics with ``Curriculum.pool_stats()``.

Needs the ``gym`` extra (``pip install 'lptrack[gym]'``); ``import lptrack``
never imports gymnasium.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, SupportsFloat

try:
    import gymnasium
except ImportError as exc:
    raise ImportError("lptrack.gym needs gymnasium: pip install 'lptrack[gym]'") from exc

from .algorithm import CurriculumTask
from .curriculum import Curriculum

__all__ = ["ClippedReturn", "CurriculumWrapper", "Episode"]

#: Keys the wrapper adds to ``info``: at every reset the task's id and label; at
#: the step that ends an episode also the score reported for it.
TASK_ID_KEY = "task_id"
TASK_LABEL_KEY = "task_label"
TASK_SCORE_KEY = "task_score"


@dataclass(frozen=True)
class Episode:
    """A finished episode, as handed to the score function."""

    task: CurriculumTask
    #: The sum of the rewards of the episode's steps.
    episode_return: float
    #: Steps taken since the reset.
    length: int
    terminated: bool
    truncated: bool
    #: The ``info`` of the episode's last step (without the wrapper's keys).
    info: dict[str, Any]


@dataclass(frozen=True)
class ClippedReturn:
    """The default score: the episode return mapped linearly from [low, high] onto [0, 1], clipped.

    The default bounds (0, 1) suit sparse success rewards (return 1 on success,
    0 otherwise: the score is the success).  For a dense reward give its range,
    e.g. ``ClippedReturn(0.0, 500.0)`` for CartPole-v1 (one reward per step,
    500 steps at most).  Learning progress compares scores in [0, 1] (its
    baseline normalisation and success threshold assume that range).
    """

    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"ClippedReturn needs finite low < high, got ({self.low}, {self.high})")

    def __call__(self, episode: Episode) -> float:
        fraction = (episode.episode_return - self.low) / (self.high - self.low)
        return min(max(fraction, 0.0), 1.0)


class CurriculumWrapper(gymnasium.Wrapper):
    """Runs each episode on a task of a shared curriculum and reports its score.

    Args:
        env: the environment to wrap.
        curriculum: a picklable zero-argument callable that returns a ``Curriculum``,
            e.g. ``functools.partial(Curriculum, config, task_factory=make_task)``.
            It is called once, at the first ``reset``, in the process that steps the
            env (the vector env's worker).  A ``LearningProgressConfig`` carries its
            ``session_id``, so every worker attaches to the pool of that session.
            Build the pool in the main process first (``with make_curriculum() as pool:``):
            the process that creates a session's segment removes it when it closes.
        apply_task: ``apply_task(env, task)`` reconfigures ``env`` (this wrapper's inner
            env; reach the base env through ``env.unwrapped``) for ``task`` before the
            env's own reset.  ``task.env_cfg`` is the task's env config (what the
            curriculum's ``task_factory`` made, or the fixed task set's entry).
        score: ``score(episode) -> float`` turns a finished :class:`Episode` into the
            score reported to the curriculum (finite; learning progress expects
            [0, 1]).  Default: :class:`ClippedReturn` with bounds (0, 1).

    ``info`` of every ``reset`` holds ``"task_id"`` and ``"task_label"`` (``task.task_id``,
    ``task.label``); ``info`` of the step that ends an episode holds them too, with
    ``"task_score"``.  An episode cut short by a ``reset`` before it terminated or was
    truncated reports no score.  ``close()`` closes the curriculum (a worker only
    detaches from the pool) and the env.
    """

    def __init__(
        self,
        env: gymnasium.Env,
        curriculum: Callable[[], Curriculum],
        apply_task: Callable[[gymnasium.Env, CurriculumTask], Any],
        score: Callable[[Episode], SupportsFloat] | None = None,
    ) -> None:
        if isinstance(curriculum, Curriculum) or not callable(curriculum):
            raise TypeError(
                "curriculum must be a picklable callable that builds a Curriculum in the worker, "
                "e.g. functools.partial(Curriculum, config, task_factory=make_task); "
                f"got {type(curriculum).__name__}"
            )
        if not callable(apply_task):
            raise TypeError(f"apply_task must be callable, got {type(apply_task).__name__}")
        if score is not None and not callable(score):
            raise TypeError(f"score must be callable or None, got {type(score).__name__}")
        super().__init__(env)
        self._make_curriculum = curriculum
        self._apply_task = apply_task
        self._score = ClippedReturn() if score is None else score
        self._curriculum: Curriculum | None = None
        self._task: CurriculumTask | None = None
        self._task_info: dict[str, Any] = {}
        self._return = 0.0
        self._length = 0

    @property
    def curriculum(self) -> Curriculum:
        """This process's curriculum (built on first use)."""
        if self._curriculum is None:
            curriculum = self._make_curriculum()
            if not isinstance(curriculum, Curriculum):
                raise TypeError(f"the curriculum factory returned {type(curriculum).__name__}, not a Curriculum")
            self._curriculum = curriculum
        return self._curriculum

    @property
    def task(self) -> CurriculumTask | None:
        """The task of the episode under way (None before the first reset and once it ended)."""
        return self._task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        task = self.curriculum.get_task()
        self._apply_task(self.env, task)
        observation, info = self.env.reset(seed=seed, options=options)
        self._task = task
        self._task_info = {TASK_ID_KEY: task.task_id, TASK_LABEL_KEY: task.label}
        self._return = 0.0
        self._length = 0
        info.update(self._task_info)
        return observation, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._return += reward
        self._length += 1
        if (terminated or truncated) and self._task is not None:
            task, self._task = self._task, None  # one report per episode
            score = float(self._score(
                Episode(task, float(self._return), self._length, bool(terminated), bool(truncated), info)
            ))
            if not math.isfinite(score):
                raise ValueError(f"the score function returned {score} for task {task.task_id}: scores must be finite")
            self._curriculum.update_task_performance(task.task_id, score)
            info.update(self._task_info)
            info[TASK_SCORE_KEY] = score
        return observation, reward, terminated, truncated, info

    def close(self) -> None:
        try:
            if self._curriculum is not None:
                curriculum, self._curriculum = self._curriculum, None
                curriculum.close()
        finally:
            super().close()
