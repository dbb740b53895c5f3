"""Configs as pydantic-style models, and as members of a pydantic model (issue #14, item 1).

The original's ``CurriculumConfig`` (a pydantic model) declares
``algorithm_config: Union[DiscreteRandomCurriculumConfig, LearningProgressConfig]
= Field(discriminator="type")``; ``OriginalShapedCurriculumConfig`` below is
shaped like it.  The pydantic tests skip where pydantic is not installed (it is
in the ``[test]`` extra); lptrack itself never needs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from typing import Any, Literal, Union

import pytest

from lptrack import DiscreteRandomCurriculumConfig, LearningProgressConfig, NullStatsLogger


def local(**overrides: Any) -> LearningProgressConfig:
    return LearningProgressConfig(use_shared_memory=False, engine="python", **overrides)


# -- without pydantic ---------------------------------------------------------------------------------------
def test_import_lptrack_does_not_import_pydantic() -> None:
    code = "import sys, lptrack; lptrack.LearningProgressConfig(); sys.exit('pydantic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_type_is_a_literal_discriminator() -> None:
    assert typing.get_type_hints(LearningProgressConfig)["type"] == Literal["learning_progress"]
    assert typing.get_type_hints(DiscreteRandomCurriculumConfig)["type"] == Literal["discrete_random"]


def test_json_round_trip_keeps_every_field() -> None:
    config = LearningProgressConfig(initial_weights=[1.0, 2.5], ema_timescale=0.05, num_active_tasks=7)
    text = config.model_dump_json()
    assert json.loads(text) == config.model_dump()
    restored = LearningProgressConfig.model_validate_json(text)
    assert restored == config and restored.session_id == config.session_id
    assert LearningProgressConfig.model_validate(json.loads(text)) == config
    assert json.loads(config.model_dump_json(indent=2)) == config.model_dump(mode="json")


def test_model_dump_include_and_exclude() -> None:
    config = local()
    assert config.model_dump(include={"type", "memory"}) == {"type": "learning_progress", "memory": 25}
    assert "session_id" not in config.model_dump(exclude={"session_id"})
    with pytest.raises(ValueError, match="mode"):
        config.model_dump(mode="yaml")  # type: ignore[arg-type]


def test_model_validate() -> None:
    config = local()
    assert LearningProgressConfig.model_validate(config) is config
    built = LearningProgressConfig.model_validate({"use_shared_memory": False, "min_samples_for_lp": 3})
    assert built.min_samples_for_lp == 3 and built.session_id is None
    with pytest.raises(ValueError, match="ema_timescale"):
        LearningProgressConfig.model_validate({"ema_timescale": 2.0})
    with pytest.raises(TypeError, match="bogus"):
        LearningProgressConfig.model_validate({"bogus": 1})
    with pytest.raises(TypeError, match="mapping"):
        LearningProgressConfig.model_validate([("memory", 3)])


def test_model_fields() -> None:
    fields = LearningProgressConfig.model_fields
    assert list(fields) == list(local().model_dump())
    assert fields["ema_timescale"].default == 0.1 and fields["ema_timescale"].annotation is float
    assert fields["session_id"].annotation == Union[str, None]
    assert not fields["memory"].is_required()
    assert local().model_fields is fields
    with pytest.raises(TypeError):
        fields["memory"] = fields["engine"]  # type: ignore[index]
    assert list(DiscreteRandomCurriculumConfig.model_fields) == ["type", "initial_weights", "num_active_tasks"]


def test_assignment_is_validated_and_a_bad_value_changes_nothing() -> None:
    config = local()
    config.ema_timescale = 1  # ints are accepted for floats, as at construction
    assert config.ema_timescale == 1.0 and isinstance(config.ema_timescale, float)
    with pytest.raises(ValueError, match="ema_timescale"):
        config.ema_timescale = 0.0
    with pytest.raises(TypeError, match="use_bidirectional"):
        config.use_bidirectional = "yes"
    assert config.ema_timescale == 1.0 and config.use_bidirectional is True
    with pytest.raises(AttributeError, match="bogus"):
        config.bogus = 1
    config.num_active_tasks = 12  # what the original's CurriculumConfig does to sync sizes
    assert config.create(12, NullStatsLogger()).task_tracker.max_memory_tasks == 12


def test_discrete_random_config() -> None:
    config = DiscreteRandomCurriculumConfig()
    assert config.algorithm_type() == "discrete_random" == config.type
    assert config.model_dump() == {"type": "discrete_random", "initial_weights": None, "num_active_tasks": 64}
    assert config == DiscreteRandomCurriculumConfig.model_validate_json(config.model_dump_json())
    assert config.create(3).pool_size() == 0
    with pytest.raises(ValueError):
        DiscreteRandomCurriculumConfig(type="learning_progress")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        config.num_active_tasks = 0


# -- inside a pydantic model ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pydantic_models() -> SimpleModels:
    pydantic = pytest.importorskip("pydantic")
    return SimpleModels(pydantic)


class SimpleModels:
    """A pydantic model shaped like the original's ``CurriculumConfig``."""

    def __init__(self, pydantic: Any) -> None:
        self.pydantic = pydantic

        class OriginalShapedCurriculumConfig(pydantic.BaseModel):
            model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

            num_active_tasks: int = pydantic.Field(default=1000, gt=0)
            seed: int = 0
            min_presentations_for_eviction: int = pydantic.Field(default=5, gt=0)
            algorithm_config: Union[DiscreteRandomCurriculumConfig, LearningProgressConfig] = pydantic.Field(
                default_factory=DiscreteRandomCurriculumConfig, discriminator="type"
            )

            def model_post_init(self, context: Any) -> None:
                # As the original: a config left at the base default (64) takes the
                # curriculum's size, else the curriculum takes the config's.
                if self.algorithm_config.num_active_tasks == 64:
                    self.algorithm_config.num_active_tasks = self.num_active_tasks
                else:
                    self.num_active_tasks = self.algorithm_config.num_active_tasks

        self.CurriculumConfig = OriginalShapedCurriculumConfig


def test_a_discriminated_union_member(pydantic_models: SimpleModels) -> None:
    CurriculumConfig = pydantic_models.CurriculumConfig
    default = CurriculumConfig()
    assert isinstance(default.algorithm_config, DiscreteRandomCurriculumConfig)
    assert default.algorithm_config.num_active_tasks == 1000
    built = CurriculumConfig(algorithm_config={"type": "learning_progress", "ema_timescale": 0.05,
                                               "use_shared_memory": False, "num_active_tasks": 200})
    assert isinstance(built.algorithm_config, LearningProgressConfig)
    assert built.algorithm_config.ema_timescale == 0.05 and built.num_active_tasks == 200
    assert built.algorithm_config.session_id is None
    shared = CurriculumConfig(algorithm_config={"type": "learning_progress"})
    assert shared.algorithm_config.session_id.startswith("lp_")  # generated when pydantic builds it too
    instance = LearningProgressConfig(num_active_tasks=300)
    held = CurriculumConfig(algorithm_config=instance)
    assert held.algorithm_config is instance and held.num_active_tasks == 300


def test_json_round_trip_through_the_model(pydantic_models: SimpleModels) -> None:
    CurriculumConfig = pydantic_models.CurriculumConfig
    config = CurriculumConfig(seed=3, algorithm_config=LearningProgressConfig(initial_weights=[0.5], memory=4))
    dumped = config.model_dump()
    assert dumped["algorithm_config"] == config.algorithm_config.model_dump()
    for restored in (
        CurriculumConfig.model_validate_json(config.model_dump_json()),
        CurriculumConfig.model_validate(dumped),
        CurriculumConfig(**json.loads(config.model_dump_json())),
    ):
        assert restored == config and restored.algorithm_config == config.algorithm_config
        assert restored.algorithm_config.session_id == config.algorithm_config.session_id
    discrete = CurriculumConfig(num_active_tasks=9)
    assert CurriculumConfig.model_validate_json(discrete.model_dump_json()) == discrete


@pytest.mark.parametrize(
    "algorithm_config, field",
    [
        ({"type": "learning_progress", "ema_timescale": 2.0}, "ema_timescale"),
        ({"type": "learning_progress", "eviction_threshold_percentile": 1.0}, "eviction_threshold_percentile"),
        ({"type": "learning_progress", "initial_weights": [1.0, -2.0]}, "initial_weights"),
        ({"type": "learning_progress", "engine": "rust"}, "engine"),
        ({"type": "learning_progress", "ema_timescale": "fast"}, "ema_timescale"),
        ({"type": "learning_progress", "bogus": 1}, "bogus"),
        ({"type": "discrete_random", "num_active_tasks": 0}, "num_active_tasks"),
        ({"type": "uniform"}, "type"),
    ],
)
def test_bad_values_raise_a_validation_error_naming_the_field(
    pydantic_models: SimpleModels, algorithm_config: dict[str, Any], field: str
) -> None:
    with pytest.raises(pydantic_models.pydantic.ValidationError, match=field):
        pydantic_models.CurriculumConfig(algorithm_config={"use_shared_memory": False, **algorithm_config}
                                         if algorithm_config["type"] == "learning_progress" else algorithm_config)


def test_json_schema(pydantic_models: SimpleModels) -> None:
    schema = LearningProgressConfig.model_json_schema()
    properties = schema["properties"]
    assert list(properties) == list(LearningProgressConfig.model_fields)
    assert properties["type"]["const"] == "learning_progress"
    assert properties["ema_timescale"]["exclusiveMinimum"] == 0.0 and properties["ema_timescale"]["maximum"] == 1.0
    assert properties["eviction_threshold_percentile"]["exclusiveMaximum"] == 1.0
    assert properties["num_active_tasks"]["minimum"] == 1 and properties["engine"]["enum"] == ["python", "native"]
    assert schema["additionalProperties"] is False
    outer = pydantic_models.CurriculumConfig.model_json_schema()
    union = outer["properties"]["algorithm_config"]
    assert set(union["discriminator"]["mapping"]) == {"discrete_random", "learning_progress"}
    assert outer["$defs"]["LearningProgressConfig"]["properties"]["memory"]["minimum"] == 1


def test_an_algorithm_from_a_model_built_config(pydantic_models: SimpleModels) -> None:
    config = pydantic_models.CurriculumConfig.model_validate_json(
        '{"algorithm_config": {"type": "learning_progress", "use_shared_memory": false,'
        ' "engine": "python", "min_samples_for_lp": 2, "num_active_tasks": 16}}'
    )
    assert config.num_active_tasks == 16  # synced from the algorithm config, as the original does
    algorithm = config.algorithm_config.create(config.num_active_tasks, NullStatsLogger())
    assert algorithm.task_tracker.max_memory_tasks == 16 and algorithm.hypers.min_samples_for_lp == 2
