"""lptrack: a learning-progress curriculum tracker with native shared-memory storage.

A drop-in replacement for the original pure-Python tracker (see SPEC.md).  The
native engine is imported only when a table of that engine is made, so this
package imports where the extension is not built.
"""

from __future__ import annotations

from lptrack.algorithm import CurriculumTask, LearningProgressAlgorithm, NullStatsLogger, StatsLogger
from lptrack.config import LearningProgressConfig
from lptrack.curriculum import (
    Curriculum,
    DiscreteRandomCurriculumConfig,
    InactiveLearningProgressWarning,
    SharedStreamWarning,
)
from lptrack.scorers import BasicLPScorer, BidirectionalLPScorer, LPScorer, LPScorerStats
from lptrack.tracker import (
    LocalMemoryBackend,
    SharedMemoryBackend,
    TaskMemoryBackend,
    TaskState,
    TaskStateIndices,
    TaskTracker,
    create_task_tracker,
)

__version__ = "0.1.0"

__all__ = [
    "BasicLPScorer",
    "BidirectionalLPScorer",
    "Curriculum",
    "CurriculumTask",
    "DiscreteRandomCurriculumConfig",
    "InactiveLearningProgressWarning",
    "LPScorer",
    "LPScorerStats",
    "LearningProgressAlgorithm",
    "LearningProgressConfig",
    "LocalMemoryBackend",
    "NullStatsLogger",
    "SharedMemoryBackend",
    "SharedStreamWarning",
    "StatsLogger",
    "TaskMemoryBackend",
    "TaskState",
    "TaskStateIndices",
    "TaskTracker",
    "__version__",
    "create_task_tracker",
]
