"""The five steps that turn one WIP product into a finished sheet row.

Each step runs only if the product's checkpoint says it has not completed yet, and its
outcome is saved before the next one starts, so a product resumed after a crash picks
up where it stopped and never appends a second sheet row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from wipsvc.adapters.base import Backends
from wipsvc.domain.errors import StepError
from wipsvc.domain.products import Descriptions, ExtractedProduct, TokenUsage
from wipsvc.domain.statuses import STEP_ORDER, Step, WipStatus
from wipsvc.pipeline.retry import Attempts, RetryPolicy, with_retries
from wipsvc.store import LeaseLost
from wipsvc.store.errors import describe_error

log = logging.getLogger(__name__)

# Fields of the sheet row written from the extraction and the descriptions.
ROW_FIELDS = (
    "title",
    "brand",
    "price",
    "currency",
    "gtin",
    "mpn",
    "availability",
    "category",
    "image_url",
    "description",
    "color",
    "material",
)


@dataclass(slots=True)
class ProductState:
    """What a product carries from step to step; saved as the ledger's checkpoint."""

    wip_id: int
    sku: str
    url: str
    step_done: Step | None = None
    row_num: int | None = None
    extracted: dict[str, Any] | None = None
    descriptions: dict[str, Any] | None = None
    attempts: dict[str, int] = field(default_factory=dict)
    token_usage: dict[str, int] = field(default_factory=dict)
    # Started before (by an instance that stopped or lost the job): its append may have been sent.
    resumed: bool = False

    def checkpoint(self) -> dict[str, Any]:
        return {
            "extracted": self.extracted,
            "descriptions": self.descriptions,
            "attempts": dict(self.attempts),  # copies: the steps still running add to them
            "token_usage": dict(self.token_usage) or None,
        }

    def add_usage(self, usage: TokenUsage) -> None:
        for key, value in usage.as_dict().items():
            self.token_usage[key] = self.token_usage.get(key, 0) + value

    @classmethod
    def resume(
        cls, wip_id: int, sku: str, url: str, step: str | None, row_num: int | None, data: dict[str, Any]
    ) -> ProductState:
        return cls(
            wip_id=wip_id,
            sku=sku,
            url=url,
            step_done=Step(step) if step else None,
            row_num=row_num,
            extracted=data.get("extracted"),
            descriptions=data.get("descriptions"),
            attempts=dict(data.get("attempts") or {}),
            token_usage=dict(data.get("token_usage") or {}),
        )

    def remaining_steps(self) -> list[Step]:
        """Steps still to run. The first three are known done by their outputs (they may finish
        out of order, see `run_product`); the last two by the step reached."""
        reached = STEP_ORDER.index(self.step_done) if self.step_done else -1
        done = {
            Step.SHEET_ROW: self.row_num is not None,
            Step.EXTRACT: self.extracted is not None,
            Step.DESCRIBE: self.descriptions is not None,
            Step.CLEAN: reached >= STEP_ORDER.index(Step.CLEAN),
            Step.COMPLETE: reached >= STEP_ORDER.index(Step.COMPLETE),
        }
        return [step for step in STEP_ORDER if not done[step]]

    def mark_done(self, step: Step) -> None:
        """Record `step` as done: `step_done` is the furthest step with every earlier one done."""
        if step in (Step.CLEAN, Step.COMPLETE):
            self.step_done = step
            return
        remaining = self.remaining_steps()
        reached: Step | None = None
        for candidate in (Step.SHEET_ROW, Step.EXTRACT, Step.DESCRIBE):
            if candidate in remaining:
                break
            reached = candidate
        self.step_done = reached

    def wip_status(self) -> WipStatus:
        """What the WIP product shows while its remaining steps run."""
        remaining = self.remaining_steps()
        if not remaining:
            return WipStatus.CLEANING  # `ready` is set when the job records the product's end
        if Step.SHEET_ROW in remaining or Step.EXTRACT in remaining:
            return WipStatus.EXTRACTING
        if Step.DESCRIBE in remaining:
            return WipStatus.GENERATING
        return WipStatus.CLEANING


class StepFailure(Exception):
    def __init__(self, step: Step, message: str, *, transient: bool = False) -> None:
        super().__init__(f"{step.value}: {message}")
        self.step = step
        self.message = message
        self.transient = transient  # the cause may pass: worth a later re-run


Save = Callable[[ProductState], Awaitable[None]]


async def run_product(
    state: ProductState,
    backends: Backends,
    save: Save,
    retry: RetryPolicy,
    *,
    on_step: Callable[[Step, float], None] | None = None,
) -> None:
    """Run the steps the product still needs; raises StepFailure on the first failing one.
    ``on_step`` is told how long each step that succeeded took.

    The sheet row and the page scrape do not depend on each other, so they run at once:
    the append (often waiting on the Sheets quota) is then off the product's critical path.
    """

    async def run(step: Step) -> None:
        started = time.monotonic()
        await _run_step(step, state, backends, retry)
        if on_step is not None:
            on_step(step, time.monotonic() - started)
        # ``save`` takes its snapshot before it first awaits: the checkpoints of two steps that
        # end at once are stored in the order they were taken (and often in one transaction).
        state.mark_done(step)
        await save(state)

    remaining = state.remaining_steps()
    first = [step for step in (Step.SHEET_ROW, Step.EXTRACT) if step in remaining]
    if len(first) == 2:
        # Both run to the end even if one fails, as in the original order the row is added
        # before the page is read: a failed product still has its row, and its row number.
        outcomes = await asyncio.gather(*(run(step) for step in first), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        remaining = remaining[2:]
    for step in remaining:
        await run(step)


async def _run_step(step: Step, state: ProductState, backends: Backends, retry: RetryPolicy) -> None:
    async def attempt() -> None:
        state.attempts[step.value] = state.attempts.get(step.value, 0) + 1
        await _STEPS[step](state, backends)

    attempts = Attempts()
    try:
        await with_retries(attempt, retry, f"{step} of {state.sku}", attempts=attempts)
    except StepError as error:
        suffix = f" (after {attempts.used} attempts)" if attempts.used > 1 else ""
        raise StepFailure(step, error.message + suffix, transient=error.transient) from error
    except LeaseLost:
        raise  # another instance owns the job now: stop without writing or failing the product
    except Exception as error:  # a bug or an adapter's surprise fails one product, not the job
        log.exception("step %s failed unexpectedly for %s", step, state.sku)
        raise StepFailure(step, f"internal error: {describe_error(error, with_type=True)}") from error


async def _sheet_row(state: ProductState, backends: Backends) -> None:
    if state.resumed:
        await backends.sheet.refresh()  # look before appending: the append may have landed
    row = await backends.sheet.find_row(state.sku)
    if row is None:
        row = await backends.sheet.append_row(state.sku, state.url)
    state.row_num = row


async def _extract(state: ProductState, backends: Backends) -> None:
    page = await backends.fetcher.fetch(state.url)
    usage = TokenUsage()
    try:
        product = await backends.extractor.extract(page, sku=state.sku, usage=usage)
    finally:
        state.add_usage(usage)  # failed and retried calls are billed too
    state.extracted = {"fields": product.fields, "sources": product.sources, "main_text": product.main_text}


async def _describe(state: ProductState, backends: Backends) -> None:
    usage = TokenUsage()
    try:
        result = await backends.describer.describe(_extracted(state), sku=state.sku, usage=usage)
    finally:
        state.add_usage(usage)
    state.descriptions = {
        "body_html": result.body_html,
        "features": result.features,
        "care_instructions": result.care_instructions,
        "generator": result.generator,
    }


async def _kept_row(state: ProductState, backends: Backends) -> None:
    """A resumed product keeps its SKU's first row, should a paused instance have added another."""
    if state.resumed:
        state.row_num = await backends.sheet.find_row(state.sku) or state.row_num


async def _clean(state: ProductState, backends: Backends) -> None:
    await _kept_row(state, backends)
    assert state.row_num is not None
    values = backends.cleaner.transform(row_values(state))
    await backends.sheet.write_fields(state.row_num, values)
    await backends.cleaner.run(row_num=state.row_num, sku=state.sku)


async def _complete(state: ProductState, backends: Backends) -> None:
    await _kept_row(state, backends)
    assert state.row_num is not None
    await backends.sheet.write_fields(state.row_num, {"status": WipStatus.READY.value})


_STEPS: dict[Step, Callable[[ProductState, Backends], Awaitable[None]]] = {
    Step.SHEET_ROW: _sheet_row,
    Step.EXTRACT: _extract,
    Step.DESCRIBE: _describe,
    Step.CLEAN: _clean,
    Step.COMPLETE: _complete,
}


def _extracted(state: ProductState) -> ExtractedProduct:
    data = state.extracted or {}
    return ExtractedProduct(
        fields=dict(data.get("fields") or {}),
        sources=dict(data.get("sources") or {}),
        main_text=data.get("main_text") or "",
    )


def row_values(state: ProductState) -> dict[str, str]:
    """The sheet row's fields from the extraction and the descriptions."""
    fields = _extracted(state).fields
    values = {name: _text(fields[name]) for name in ROW_FIELDS if fields.get(name)}
    desc = Descriptions(**dict((state.descriptions or {}).items())) if state.descriptions else None
    if desc is not None:
        values["body_html"] = desc.body_html
        values["features"] = "\n".join(desc.features)
        values["care_instructions"] = desc.care_instructions
    return values


def _text(value: str | list[str]) -> str:
    return ", ".join(value) if isinstance(value, list) else value
