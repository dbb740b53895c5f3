"""``LearningProgressConfig``: the hyper-parameters of the learning-progress curriculum.

Configs are standard keyword-only dataclasses with a ``Literal`` ``type``, so
pydantic (where it is installed; lptrack does not need it) takes them as
members of its models, discriminated unions on ``type`` included, as the
original's ``CurriculumConfig`` declares them.  ``ConfigModel`` gives them the
pydantic-model surface the original's users call (``model_dump``,
``model_dump_json``, ``model_validate``, ``model_copy``, ``model_fields``,
``model_json_schema``).  Every value is checked at construction, on
assignment, and when pydantic builds a config (its ``ValidationError`` then
names the field), so presets and copies are validated too (SPEC.md,
deliberate change 4).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import secrets
import typing
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, Protocol

from lptrack._engines import DEFAULT_ENGINE, ENGINES, check_engine

if TYPE_CHECKING:
    from lptrack.algorithm import LearningProgressAlgorithm, StatsLogger

ALGORITHM_TYPE = "learning_progress"


def new_session_id() -> str:
    """A fresh shared-memory session id: "lp_" + 8 hex digits."""
    return "lp_" + secrets.token_hex(4)


# -- one field's check: value -> the validated value, else TypeError/ValueError -------------------
class RealCheck(NamedTuple):
    """A finite real number within optional bounds (``*_open``: the bound itself is excluded)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __call__(self, name: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        result = float(value)
        if not math.isfinite(result):
            raise ValueError(f"{name} must be finite, got {value!r}")
        low, high = self.low, self.high
        if low is not None and (result < low or (self.low_open and result == low)):
            raise ValueError(f"{name} must be {'>' if self.low_open else '>='} {low}, got {value!r}")
        if high is not None and (result > high or (self.high_open and result == high)):
            raise ValueError(f"{name} must be {'<' if self.high_open else '<='} {high}, got {value!r}")
        return result

    def json_schema(self) -> dict[str, float]:
        schema: dict[str, float] = {}
        if self.low is not None:
            schema["exclusiveMinimum" if self.low_open else "minimum"] = self.low
        if self.high is not None:
            schema["exclusiveMaximum" if self.high_open else "maximum"] = self.high
        return schema


class IntCheck(NamedTuple):
    """An int (not a bool) >= ``low``."""

    low: int

    def __call__(self, name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < self.low:
            raise ValueError(f"{name} must be >= {self.low}, got {value!r}")
        return int(value)

    def json_schema(self) -> dict[str, int]:
        return {"minimum": self.low}


class BoolCheck(NamedTuple):
    def __call__(self, name: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {value!r}")
        return value

    def json_schema(self) -> dict[str, Any]:
        return {}


class ConstCheck(NamedTuple):
    """The one value a discriminating ``type`` field may take."""

    value: str

    def __call__(self, name: str, value: object) -> str:
        if value != self.value:
            raise ValueError(f"{name} must be {self.value!r}, got {value!r}")
        return self.value

    def json_schema(self) -> dict[str, Any]:
        return {}


class WeightsCheck(NamedTuple):
    """None, or a list of finite reals >= 0 (copied)."""

    def __call__(self, name: str, value: object) -> list[float] | None:
        if value is None:
            return None
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise TypeError(f"{name} must be None or a list of numbers, got {value!r}")
        weight = RealCheck(0.0)
        return [weight(f"{name}[{i}]", item) for i, item in enumerate(value)]

    def json_schema(self) -> dict[str, Any]:
        return {}


class SessionIdCheck(NamedTuple):
    def __call__(self, name: str, value: object) -> str | None:
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{name} must be None or a non-empty str, got {value!r}")
        return value

    def json_schema(self) -> dict[str, Any]:
        return {}


class EngineCheck(NamedTuple):
    def __call__(self, name: str, value: object) -> str:
        return check_engine(value)

    def json_schema(self) -> dict[str, Any]:
        return {"enum": list(ENGINES)}


class FieldCheck(Protocol):
    """What ``ConfigModel`` needs of a field's check."""

    def __call__(self, name: str, value: object) -> Any:
        """``value`` validated (and normalised, e.g. an int for a float field), else TypeError/ValueError."""

    def json_schema(self) -> dict[str, Any]:
        """The bounds the check enforces, as JSON-schema keywords."""


class ConfigField(NamedTuple):
    """One entry of ``model_fields`` (what pydantic's ``FieldInfo`` tells of a field)."""

    annotation: Any
    default: Any
    description: str | None = None

    def is_required(self) -> bool:
        return False  # every config field has a default


_MODEL_FIELDS: dict[type, Mapping[str, ConfigField]] = {}


class _ModelFields:
    """``model_fields`` on the class and its instances: {name: ConfigField}, read-only."""

    def __get__(self, instance: object, owner: type) -> Mapping[str, ConfigField]:
        fields = _MODEL_FIELDS.get(owner)
        if fields is None:
            hints = typing.get_type_hints(owner)
            fields = _MODEL_FIELDS[owner] = MappingProxyType({
                field.name: ConfigField(hints[field.name], field.default)
                for field in dataclasses.fields(owner)
            })
        return fields


class ConfigModel:
    """The pydantic-model surface of a config dataclass, without pydantic.

    A subclass is a ``@dataclass(kw_only=True)`` whose fields all have defaults
    and whose ``_field_checks`` hold each field's check (a field without one
    cannot even be set by ``__init__``).  Checks run on every assignment, and
    again in ``__post_init__``, which is all that runs when pydantic builds a
    config (it sets the fields directly); unknown fields are refused.
    """

    _field_checks: ClassVar[Mapping[str, FieldCheck]] = {}
    # Read by pydantic (a plain dict: its ConfigDict is a TypedDict).
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}
    model_fields: ClassVar[Mapping[str, ConfigField]] = _ModelFields()  # type: ignore[assignment]

    def __post_init__(self) -> None:
        for name, check in self._field_checks.items():
            object.__setattr__(self, name, check(name, getattr(self, name)))
        self._validate_model()

    def _validate_model(self) -> None:
        """Rules across fields, after the per-field checks of construction."""

    def __setattr__(self, name: str, value: Any) -> None:
        check = self._field_checks.get(name)
        if check is None:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        object.__setattr__(self, name, check(name, value))

    def model_dump(
        self,
        *,
        mode: Literal["python", "json"] = "python",
        include: Collection[str] | None = None,
        exclude: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """Every field by name (a fresh dict; lists copied).  Every value is JSON-native,
        so ``mode="json"`` gives the same dict."""
        if mode not in ("python", "json"):
            raise ValueError(f"mode must be 'python' or 'json', got {mode!r}")
        dumped = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            name = field.name
            if (include is None or name in include) and (exclude is None or name not in exclude):
                value = getattr(self, name)
                dumped[name] = list(value) if isinstance(value, list) else value
        return dumped

    def model_dump_json(
        self,
        *,
        indent: int | None = None,
        include: Collection[str] | None = None,
        exclude: Collection[str] | None = None,
    ) -> str:
        return json.dumps(self.model_dump(include=include, exclude=exclude), indent=indent)

    @classmethod
    def model_validate(cls, obj: object) -> Any:
        """A config from a mapping of field values (checked; unknown fields refused),
        or ``obj`` itself when it already is one."""
        if isinstance(obj, cls):
            return obj
        if not isinstance(obj, Mapping):
            raise TypeError(f"{cls.__name__}.model_validate takes a mapping, got {type(obj).__name__}")
        return cls(**obj)

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Any:
        return cls.model_validate(json.loads(data))

    def model_copy(self, update: Mapping[str, Any] | None = None, *, deep: bool = False) -> Any:
        """A checked copy with ``update`` applied (always independent: lists are copied,
        so ``deep`` changes nothing); the session id is kept unless updated."""
        return type(self)(**{**self.model_dump(), **(update or {})})

    @classmethod
    def model_json_schema(cls) -> dict[str, Any]:
        """The JSON schema pydantic derives from the fields, with each field's bounds."""
        try:
            import pydantic
        except ImportError as exc:
            raise ImportError(f"{cls.__name__}.model_json_schema() needs pydantic (pip install pydantic)") from exc
        return pydantic.TypeAdapter(cls).json_schema()

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        """pydantic's hook: add each field's bounds to the schema it derived."""
        json_schema = handler(core_schema)
        properties = handler.resolve_ref_schema(json_schema).get("properties", {})
        for name, check in cls._field_checks.items():
            if name in properties:
                properties[name].update(check.json_schema())
        return json_schema


_LEARNING_PROGRESS_CHECKS: dict[str, FieldCheck] = {
    "type": ConstCheck(ALGORITHM_TYPE),
    "initial_weights": WeightsCheck(),
    "use_bidirectional": BoolCheck(),
    "use_baseline_normalization": BoolCheck(),
    "ema_timescale": RealCheck(0.0, 1.0, low_open=True),
    "slow_timescale_factor": RealCheck(0.0, 1.0, low_open=True),
    "exploration_bonus": RealCheck(),
    "progress_smoothing": RealCheck(),
    "performance_bonus_weight": RealCheck(),
    "lp_score_temperature": RealCheck(),
    "z_score_amplification": RealCheck(),
    "early_progress_amplification": RealCheck(0.0, 1.0),
    "num_active_tasks": IntCheck(1),
    "rand_task_rate": RealCheck(0.0, 1.0),
    "sample_threshold": IntCheck(0),
    "memory": IntCheck(1),
    "eviction_threshold_percentile": RealCheck(0.0, 1.0, high_open=True),
    "max_inactive_labels_retained": IntCheck(0),
    "basic_ema_initial_alpha": RealCheck(0.0, 1.0),
    "basic_ema_alpha_decay": RealCheck(0.0, 1.0),
    "min_samples_for_lp": IntCheck(0),
    "task_tracker_ema_alpha": RealCheck(0.0, 1.0, low_open=True),
    "task_default_success_threshold": RealCheck(),
    "task_default_generator_type": RealCheck(),
    "task_struct_size": IntCheck(1),
    "use_shared_memory": BoolCheck(),
    "session_id": SessionIdCheck(),
    "performance_mode": BoolCheck(),
    "show_curriculum_troubleshooting_logging": BoolCheck(),
    "perf_invalidation_batch_size": IntCheck(1),
    "perf_invalidation_batch_fraction": RealCheck(0.0, 1.0),
    "perf_cache_task_list": BoolCheck(),
    "perf_log_metrics": BoolCheck(),
    "engine": EngineCheck(),
}


@dataclass(kw_only=True)
class LearningProgressConfig(ConfigModel):
    """Hyper-parameters; fields, defaults and presets as in SPEC.md, plus ``engine``."""

    _field_checks: ClassVar[Mapping[str, FieldCheck]] = MappingProxyType(_LEARNING_PROGRESS_CHECKS)

    type: Literal["learning_progress"] = ALGORITHM_TYPE
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
    #: (see invalidation_batch_size).  0.0 keeps the batch fixed.
    perf_invalidation_batch_fraction: float = 0.05
    perf_cache_task_list: bool = True
    perf_log_metrics: bool = False
    engine: str = DEFAULT_ENGINE

    def _validate_model(self) -> None:
        # Generated once, here: every process given this config (or a copy) names one session.
        if self.use_shared_memory and self.session_id is None:
            object.__setattr__(self, "session_id", new_session_id())

    def invalidation_batch_size(self, pool_size: int) -> int:
        """Updates and evictions per batch (SPEC.md, deliberate change 1) for a pool
        of ``pool_size`` slots: ``perf_invalidation_batch_size``, or
        ``ceil(perf_invalidation_batch_fraction * pool_size)`` when that is more.
        A pass costs O(pool), so a batch in proportion to the pool keeps its
        cost per event flat as the pool grows; the distribution may then be up
        to that many events old (README, "Staleness").  A batch size of 1 is
        the original's behaviour, a pass after every event, and stays so at any
        fraction: the golden traces' contract."""
        if self.perf_invalidation_batch_size == 1:
            return 1
        return max(self.perf_invalidation_batch_size,
                   math.ceil(self.perf_invalidation_batch_fraction * pool_size))

    def algorithm_type(self) -> str:
        return ALGORITHM_TYPE

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
