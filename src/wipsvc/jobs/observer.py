"""What a job runner reports as it goes, for whoever measures the service (e.g. its metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class RunnerObserver(Protocol):
    def step_finished(self, step: str, seconds: float) -> None:
        """A product's step succeeded after ``seconds`` (retries and quota waits included)."""

    def tokens_spent(self, usage: Mapping[str, int]) -> None:
        """LLM tokens a product spent on this instance, by kind (prompt, completion, …)."""
