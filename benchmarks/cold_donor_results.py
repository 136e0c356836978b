"""What one run of the cold-donor benchmark measured (benchmarks.cold_donor runs it, .cold_donor_report
prints it): the variants' names, one interpreter's sample and the run's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PYC, NO_PYC = "cold (.pyc)", "cold (no .pyc)"
SNAPSTART = "SnapStart, modelled (.pyc)"


def warmed_up(typing_seconds: float) -> str:
    return f"warm-up, {typing_seconds:g}s typing (.pyc)"


@dataclass
class ColdDonorConfig:
    rounds: int = 10
    warm: int = 3
    charge_ms: float = 300.0
    jitter: float = 0.10
    seed: int = 7
    breakdown: int = 3
    compare: str | None = None
    typing_seconds: float = 10.0


@dataclass
class Sample:
    """One fresh interpreter: ms from the spawn to each point, and the CPU time of each phase."""

    start: float  # interpreter start-up, up to the first line of the child
    init_wall: float
    init_cpu: float
    first_wall: float
    first_cpu: float
    warm_wall: list[float]
    warm_cpu: list[float]
    statuses: list[int]
    warm_up_status: int | None = None  # the form's warm-up, when the variant sends one
    warm_up_wall: float | None = None
    warm_up_cpu: float | None = None

    @property
    def cold(self) -> float:
        return self.start + self.init_wall + self.first_wall

    @property
    def warm_up_done(self) -> float | None:
        """ms from the spawn to the warm-up's answer (the environment is ready for the donation)."""
        return None if self.warm_up_wall is None else self.start + self.init_wall + self.warm_up_wall


@dataclass
class ColdDonorResult:
    config: ColdDonorConfig
    memory_mb: int
    samples: dict[str, list[Sample]]
    breakdown: list[dict[str, Any]]
    importtime: dict[str, list[str]]
    machine: str
    started_at: str
    load: str
    segments: int = 0
    notes: list[str] = field(default_factory=list)
    memory_by_variant: dict[str, int] = field(default_factory=dict)
    """A variant whose revision's template gives the function another MemorySize (``--compare``)."""

    def memory_of(self, variant: str) -> int:
        return self.memory_by_variant.get(variant, self.memory_mb)
