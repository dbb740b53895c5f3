"""``LearningProgressConfig``: defaults, presets, copies and validation."""

from __future__ import annotations

import math
import re

import pytest

from lptrack import LearningProgressAlgorithm, LearningProgressConfig, NullStatsLogger

DEFAULTS = {
    "type": "learning_progress", "initial_weights": None, "use_bidirectional": True,
    "use_baseline_normalization": True, "ema_timescale": 0.1, "slow_timescale_factor": 0.2,
    "exploration_bonus": 0.1, "progress_smoothing": 0.0, "performance_bonus_weight": 0.0,
    "lp_score_temperature": 0.0, "z_score_amplification": 10.0, "early_progress_amplification": 0.5,
    "num_active_tasks": 1000, "rand_task_rate": 0.01, "sample_threshold": 10, "memory": 25,
    "eviction_threshold_percentile": 0.4, "max_inactive_labels_retained": 100, "basic_ema_initial_alpha": 0.3,
    "basic_ema_alpha_decay": 0.2, "min_samples_for_lp": 10, "task_tracker_ema_alpha": 0.02,
    "task_default_success_threshold": 0.5, "task_default_generator_type": 0.0, "task_struct_size": 18,
    "use_shared_memory": True, "performance_mode": False, "show_curriculum_troubleshooting_logging": False,
    "perf_invalidation_batch_size": 100, "perf_invalidation_batch_fraction": 0.05, "perf_cache_task_list": True,
    "perf_log_metrics": False,
    "engine": "native",
}


def test_defaults() -> None:
    dumped = LearningProgressConfig().model_dump()
    session_id = dumped.pop("session_id")
    assert dumped == DEFAULTS
    assert re.fullmatch(r"lp_[0-9a-f]{8}", session_id)


def test_session_id_only_when_shared_and_kept_by_copies() -> None:
    assert LearningProgressConfig(use_shared_memory=False).session_id is None
    config = LearningProgressConfig()
    assert config.session_id != LearningProgressConfig().session_id
    assert config.model_copy().session_id == config.session_id
    assert config.model_copy(update={"ema_timescale": 0.2}).session_id == config.session_id
    assert LearningProgressConfig(session_id="mine").session_id == "mine"


def test_model_copy_applies_updates_and_is_independent() -> None:
    config = LearningProgressConfig(initial_weights=[1.0, 2.0], use_shared_memory=False)
    copy = config.model_copy(update={"exploration_bonus": 0.3})
    assert copy.exploration_bonus == 0.3 and config.exploration_bonus == 0.1
    copy.initial_weights.append(3.0)
    assert config.initial_weights == [1.0, 2.0]
    assert config.model_dump()["initial_weights"] is not config.initial_weights


def test_algorithm_type_and_create() -> None:
    config = LearningProgressConfig(use_shared_memory=False, engine="python", num_active_tasks=4)
    assert config.algorithm_type() == "learning_progress"
    algorithm = config.create(4, NullStatsLogger())
    assert isinstance(algorithm, LearningProgressAlgorithm) and algorithm.hypers is config


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("default", {}),
        ("stable", {"ema_timescale": 0.01, "rand_task_rate": 0.02, "exploration_bonus": 0.15,
                    "min_samples_for_lp": 20, "z_score_amplification": 5.0}),
        ("fast_learning", {"ema_timescale": 0.2, "rand_task_rate": 0.005, "exploration_bonus": 0.05,
                           "min_samples_for_lp": 5, "z_score_amplification": 15.0}),
        ("arena_legacy", {"ema_timescale": 0.001, "show_curriculum_troubleshooting_logging": True}),
    ],
)
def test_presets(preset: str, expected: dict) -> None:
    config = getattr(LearningProgressConfig, preset)()
    dumped = config.model_dump()
    dumped.pop("session_id")
    assert dumped == {**DEFAULTS, "num_active_tasks": 256, **expected}
    overridden = getattr(LearningProgressConfig, preset)(64, exploration_bonus=0.5)
    assert overridden.num_active_tasks == 64 and overridden.exploration_bonus == 0.5
    with pytest.raises(ValueError):
        getattr(LearningProgressConfig, preset)(0)
    with pytest.raises(TypeError):
        getattr(LearningProgressConfig, preset)(bogus=1)


def test_ints_are_accepted_for_floats() -> None:
    config = LearningProgressConfig(ema_timescale=1, exploration_bonus=0, use_shared_memory=False)
    assert config.ema_timescale == 1.0 and isinstance(config.ema_timescale, float)


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("type", "other", ValueError),
        ("num_active_tasks", 0, ValueError),
        ("num_active_tasks", 2.5, TypeError),
        ("num_active_tasks", True, TypeError),
        ("memory", 0, ValueError),
        ("task_struct_size", 0, ValueError),
        ("perf_invalidation_batch_size", 0, ValueError),
        ("min_samples_for_lp", -1, ValueError),
        ("max_inactive_labels_retained", -1, ValueError),
        ("eviction_threshold_percentile", 1.0, ValueError),
        ("eviction_threshold_percentile", -0.1, ValueError),
        ("ema_timescale", 0.0, ValueError),
        ("ema_timescale", 1.01, ValueError),
        ("slow_timescale_factor", 0.0, ValueError),
        ("task_tracker_ema_alpha", 0.0, ValueError),
        ("early_progress_amplification", 1.5, ValueError),
        ("rand_task_rate", 2.0, ValueError),
        ("exploration_bonus", math.nan, ValueError),
        ("z_score_amplification", math.inf, ValueError),
        ("lp_score_temperature", "hot", TypeError),
        ("use_bidirectional", 1, TypeError),
        ("initial_weights", [1.0, -1.0], ValueError),
        ("session_id", "", ValueError),
        ("engine", "rust", ValueError),
        ("perf_invalidation_batch_fraction", -0.1, ValueError),
        ("perf_invalidation_batch_fraction", 1.5, ValueError),
    ],
)
def test_invalid_values_are_refused_everywhere(field: str, value: object, error: type) -> None:
    with pytest.raises(error):
        LearningProgressConfig(**{field: value})
    with pytest.raises(error):
        LearningProgressConfig.stable(**{field: value})
    with pytest.raises(error):
        LearningProgressConfig(use_shared_memory=False).model_copy(update={field: value})


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(TypeError, match="bogus"):
        LearningProgressConfig(bogus=1)
    with pytest.raises(TypeError, match="bogus"):
        LearningProgressConfig(use_shared_memory=False).model_copy(update={"bogus": 1})


def test_boundary_values_are_accepted() -> None:
    config = LearningProgressConfig(
        ema_timescale=1.0, eviction_threshold_percentile=0.0, perf_invalidation_batch_size=1,
        min_samples_for_lp=0, max_inactive_labels_retained=0, lp_score_temperature=-1.0, engine="python",
        use_shared_memory=False,
    )
    assert config.perf_invalidation_batch_size == 1 and config.engine == "python"


def test_a_batch_fraction_grows_the_batch_with_the_pool() -> None:
    config = LearningProgressConfig(use_shared_memory=False, perf_invalidation_batch_fraction=0.01)
    assert [config.invalidation_batch_size(n) for n in (1_000, 10_000, 100_001)] == [100, 100, 1_001]
    assert LearningProgressConfig(
        use_shared_memory=False, perf_invalidation_batch_fraction=0.0
    ).invalidation_batch_size(10**6) == 100
    algorithm = LearningProgressConfig(
        use_shared_memory=False, num_active_tasks=5_000, perf_invalidation_batch_fraction=0.1
    ).create(5_000, None)
    assert algorithm.scorer.batch.size == 500


def test_the_default_batch_grows_past_2000_tasks_and_batch_1_stays_exact() -> None:
    """Default fraction 0.05: a batch of 100 up to 2,000 tasks, then 5% of the pool;
    a batch size of 1 (the golden traces' setting) is a pass after every event at any size."""
    config = LearningProgressConfig(use_shared_memory=False)
    assert [config.invalidation_batch_size(n) for n in (1_000, 2_000, 10_000, 100_000)] == [100, 100, 500, 5_000]
    exact = LearningProgressConfig(use_shared_memory=False, perf_invalidation_batch_size=1)
    assert [exact.invalidation_batch_size(n) for n in (8, 1_000, 10**6)] == [1, 1, 1]
