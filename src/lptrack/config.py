"""``LearningProgressConfig``: the hyper-parameters of the learning-progress curriculum.

A plain keyword-only dataclass that offers the pydantic-style surface the
original's users call (``model_dump``, ``model_copy``) without a pydantic
dependency.  Every value is checked at construction, so presets and
``model_copy(update=...)`` are validated too (SPEC.md, deliberate change 4).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lptrack._engines import DEFAULT_ENGINE, check_engine

if TYPE_CHECKING:
    from lptrack.algorithm import LearningProgressAlgorithm, StatsLogger

ALGORITHM_TYPE = "learning_progress"


def new_session_id() -> str:
    """A fresh shared-memory session id: "lp_" + 8 hex digits."""
    return "lp_" + secrets.token_hex(4)


def _real(name: str, value: object, low: float | None = None, high: float | None = None, *,
          low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float within the given bounds, else ValueError/TypeError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (result < low or (low_open and result == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (result > high or (high_open and result == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return result


def _int(name: str, value: object, low: int) -> int:
    """``value`` as an int >= ``low``, else ValueError/TypeError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


@dataclass(kw_only=True)
class LearningProgressConfig:
    """Hyper-parameters; fields, defaults and presets as in SPEC.md, plus ``engine``."""

    type: str = ALGORITHM_TYPE
    initial_weights: list[float] | None = None
    use_bidirectional: bool = True
    use_baseline_normalization: bool = True
    ema_timescale: float = 0.1
    slow_timescale_factor: float = 0.2
    exploration_bonus: float = 0.1
    progress_smoothing: float = 0.0
    performance_bonus_weight: float = 0.0
    lp_score_temperature: float = 0.0
    z_score_amplification: float = 10.0
    early_progress_amplification: float = 0.5
    num_active_tasks: int = 1000
    rand_task_rate: float = 0.01
    sample_threshold: int = 10
    memory: int = 25
    eviction_threshold_percentile: float = 0.4
    max_inactive_labels_retained: int = 100
    basic_ema_initial_alpha: float = 0.3
    basic_ema_alpha_decay: float = 0.2
    min_samples_for_lp: int = 10
    task_tracker_ema_alpha: float = 0.02
    task_default_success_threshold: float = 0.5
    task_default_generator_type: float = 0.0
    task_struct_size: int = 18
    use_shared_memory: bool = True
    session_id: str | None = None
    performance_mode: bool = False
    show_curriculum_troubleshooting_logging: bool = False
    perf_invalidation_batch_size: int = 100
    #: A batch that grows with the pool (not in the original): at least this
    #: share of the pool's slots, when that is more than perf_invalidation_batch_size
    #: (see invalidation_batch_size).  0.0, the default, keeps the batch fixed.
    perf_invalidation_batch_fraction: float = 0.0
    perf_cache_task_list: bool = True
    perf_log_metrics: bool = False
    engine: str = DEFAULT_ENGINE

    def __post_init__(self) -> None:
        if self.type != ALGORITHM_TYPE:
            raise ValueError(f"type must be {ALGORITHM_TYPE!r}, got {self.type!r}")
        if self.initial_weights is not None:
            self.initial_weights = [
                _real(f"initial_weights[{i}]", weight, 0.0) for i, weight in enumerate(self.initial_weights)
            ]
        for name in (
            "use_bidirectional", "use_baseline_normalization", "use_shared_memory", "performance_mode",
            "show_curriculum_troubleshooting_logging", "perf_cache_task_list", "perf_log_metrics",
        ):
            _bool(name, getattr(self, name))
        self.ema_timescale = _real("ema_timescale", self.ema_timescale, 0.0, 1.0, low_open=True)
        self.slow_timescale_factor = _real("slow_timescale_factor", self.slow_timescale_factor, 0.0, 1.0,
                                           low_open=True)
        self.exploration_bonus = _real("exploration_bonus", self.exploration_bonus)
        self.progress_smoothing = _real("progress_smoothing", self.progress_smoothing)
        self.performance_bonus_weight = _real("performance_bonus_weight", self.performance_bonus_weight)
        self.lp_score_temperature = _real("lp_score_temperature", self.lp_score_temperature)
        self.z_score_amplification = _real("z_score_amplification", self.z_score_amplification)
        self.early_progress_amplification = _real("early_progress_amplification",
                                                  self.early_progress_amplification, 0.0, 1.0)
        self.rand_task_rate = _real("rand_task_rate", self.rand_task_rate, 0.0, 1.0)
        self.eviction_threshold_percentile = _real("eviction_threshold_percentile",
                                                   self.eviction_threshold_percentile, 0.0, 1.0, high_open=True)
        self.basic_ema_initial_alpha = _real("basic_ema_initial_alpha", self.basic_ema_initial_alpha, 0.0, 1.0)
        self.basic_ema_alpha_decay = _real("basic_ema_alpha_decay", self.basic_ema_alpha_decay, 0.0, 1.0)
        self.task_tracker_ema_alpha = _real("task_tracker_ema_alpha", self.task_tracker_ema_alpha, 0.0, 1.0,
                                            low_open=True)
        self.task_default_success_threshold = _real("task_default_success_threshold",
                                                    self.task_default_success_threshold)
        self.task_default_generator_type = _real("task_default_generator_type", self.task_default_generator_type)
        self.num_active_tasks = _int("num_active_tasks", self.num_active_tasks, 1)
        self.sample_threshold = _int("sample_threshold", self.sample_threshold, 0)
        self.memory = _int("memory", self.memory, 1)
        self.max_inactive_labels_retained = _int("max_inactive_labels_retained",
                                                 self.max_inactive_labels_retained, 0)
        self.min_samples_for_lp = _int("min_samples_for_lp", self.min_samples_for_lp, 0)
        self.task_struct_size = _int("task_struct_size", self.task_struct_size, 1)
        self.perf_invalidation_batch_size = _int("perf_invalidation_batch_size",
                                                 self.perf_invalidation_batch_size, 1)
        self.perf_invalidation_batch_fraction = _real("perf_invalidation_batch_fraction",
                                                      self.perf_invalidation_batch_fraction, 0.0, 1.0)
        check_engine(self.engine)
        if self.session_id is not None and (not isinstance(self.session_id, str) or not self.session_id):
            raise ValueError(f"session_id must be None or a non-empty str, got {self.session_id!r}")
        if self.use_shared_memory and self.session_id is None:
            self.session_id = new_session_id()

    def invalidation_batch_size(self, pool_size: int) -> int:
        """Updates and evictions per batch (SPEC.md, deliberate change 1) for a pool
        of ``pool_size`` slots: ``perf_invalidation_batch_size``, or
        ``ceil(perf_invalidation_batch_fraction * pool_size)`` when that is more.
        A pass costs O(pool), so a batch in proportion to the pool keeps its
        cost per event flat as the pool grows; the distribution may then be up
        to that many events old (README, "Staleness")."""
        return max(self.perf_invalidation_batch_size,
                   math.ceil(self.perf_invalidation_batch_fraction * pool_size))

    # -- pydantic-style surface --------------------------------------------------------
    def algorithm_type(self) -> str:
        return ALGORITHM_TYPE

    def model_dump(self) -> dict[str, Any]:
        """Every field by name (a fresh dict; lists copied)."""
        dumped = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        if dumped["initial_weights"] is not None:
            dumped["initial_weights"] = list(dumped["initial_weights"])
        return dumped

    def model_copy(self, update: dict[str, Any] | None = None) -> LearningProgressConfig:
        """A validated copy with ``update`` applied; the session id is kept unless updated."""
        return type(self)(**{**self.model_dump(), **(update or {})})

    def create(self, num_tasks: int, stats_logger: StatsLogger | None = None) -> LearningProgressAlgorithm:
        from lptrack.algorithm import LearningProgressAlgorithm

        return LearningProgressAlgorithm(num_tasks, stats_logger, self)

    # -- presets ----------------------------------------------------------------------------
    @classmethod
    def default(cls, num_active_tasks: int = 256, **overrides: Any) -> LearningProgressConfig:
        return cls(**{"num_active_tasks": num_active_tasks, **overrides})

    @classmethod
    def stable(cls, num_active_tasks: int = 256, **overrides: Any) -> LearningProgressConfig:
        preset = {"ema_timescale": 0.01, "rand_task_rate": 0.02, "exploration_bonus": 0.15,
                  "min_samples_for_lp": 20, "z_score_amplification": 5.0}
        return cls(**{"num_active_tasks": num_active_tasks, **preset, **overrides})

    @classmethod
    def fast_learning(cls, num_active_tasks: int = 256, **overrides: Any) -> LearningProgressConfig:
        preset = {"ema_timescale": 0.2, "rand_task_rate": 0.005, "exploration_bonus": 0.05,
                  "min_samples_for_lp": 5, "z_score_amplification": 15.0}
        return cls(**{"num_active_tasks": num_active_tasks, **preset, **overrides})

    @classmethod
    def arena_legacy(cls, num_active_tasks: int = 256, **overrides: Any) -> LearningProgressConfig:
        preset = {"ema_timescale": 0.001, "show_curriculum_troubleshooting_logging": True}
        return cls(**{"num_active_tasks": num_active_tasks, **preset, **overrides})
