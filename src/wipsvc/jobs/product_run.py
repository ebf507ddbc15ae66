"""One product of a running job: started, taken through its remaining steps, finished.

Its writes go through the job's :class:`~wipsvc.jobs.ledger_writer.LedgerWriter`: a start before
any outside effect (so that a product resumed after a crash knows its append may have been sent),
a checkpoint after each step but the last (the steps that follow would otherwise repeat paid or
visible work: a sheet row, an LLM answer, an Apps Script run; and the WIP product shows
extracting → generating → cleaning), and its end, which carries the last checkpoint with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from wipsvc.adapters.base import Backends
from wipsvc.domain.statuses import STEP_ORDER, Step
from wipsvc.jobs.eta import EtaEstimator
from wipsvc.jobs.ledger_writer import LedgerWriter
from wipsvc.jobs.observer import RunnerObserver
from wipsvc.limits.admission import call_admitted
from wipsvc.pipeline.retry import RetryPolicy
from wipsvc.pipeline.steps import ProductState, StepFailure, run_product
from wipsvc.store import ItemRecord, LeaseLost, describe_error, is_outage
from wipsvc.store.ledger_batch import ItemCheckpoint, ItemFinish, ItemStart

log = logging.getLogger(__name__)


class Paused(Exception):
    """A product stopped between two steps because its runner is pausing."""


class ProductRun:
    def __init__(
        self,
        job_id: str,
        writer: LedgerWriter,
        retry: RetryPolicy,
        *,
        should_pause: Callable[[], bool],
        observer: RunnerObserver | None = None,
    ) -> None:
        self._job_id = job_id
        self._writer = writer
        self._retry = retry
        self._should_pause = should_pause
        self._observer = observer

    async def process(self, item: ItemRecord, backends: Backends, url: str, eta: EtaEstimator) -> bool:
        """Run the product to its end; False if it paused between two steps instead."""
        job_id, writer = self._job_id, self._writer
        started = time.monotonic()
        await writer.write(ItemStart(item.wip_id))
        state = ProductState.resume(item.wip_id, item.sku, url, item.step, item.row_num, item.checkpoint)
        state.resumed = item.attempts > 0  # the start just stored was not its first
        eta.product_started(item.wip_id, [step.value for step in state.remaining_steps()])
        spent_before = dict(state.token_usage)

        async def save(state: ProductState) -> None:
            remaining = state.remaining_steps()
            for step in STEP_ORDER:  # steps may finish out of order (see run_product)
                if step not in remaining:
                    eta.step_finished(state.wip_id, step.value)
            if not remaining:
                return  # the product's end carries its last checkpoint
            await writer.write(_checkpoint(state))
            if self._should_pause():
                raise Paused

        error = error_step = None
        transient = False
        last: ItemCheckpoint | None = None
        # The Apps Script bucket tells when this product's call gets one of its executions.
        told = call_admitted.set(lambda _bucket: eta.call_admitted(item.wip_id))
        try:
            await run_product(state, backends, save, self._retry, on_step=self._step_finished)
            last = _checkpoint(state)
        except Paused:
            self._tokens_spent(state.token_usage, spent_before)
            log.info("job %s product %s paused after %s", job_id, item.sku, state.step_done)
            return False
        except StepFailure as failure:
            error, error_step, transient = failure.message, failure.step.value, failure.transient
            log.info("job %s product %s failed at %s: %s", job_id, item.sku, error_step, error)
            last = _checkpoint(state)  # keep what the failed step spent (tokens, attempts)
        except Exception as failure:
            if isinstance(failure, LeaseLost) or is_outage(failure):
                raise  # the job stops and is resumed (a claim limit ends it if this never passes)
            # The store refused this product's checkpoint: the product fails alone.
            remaining = state.remaining_steps()
            error_step = remaining[0].value if remaining else None
            error = f"could not store the product's progress: {describe_error(failure)}"
            log.exception("job %s product %s: %s", job_id, item.sku, error)
        finally:
            call_admitted.reset(told)
        self._tokens_spent(state.token_usage, spent_before)
        eta.product_finished(item.wip_id)
        finish = ItemFinish(
            item.wip_id,
            item.sku,
            error,
            error_step,
            time.monotonic() - started,
            eta.estimate(),
            row_num=state.row_num,
            last=last,
            token_usage=state.token_usage,
            transient=transient,
        )
        try:
            await writer.write(finish)
        except Exception as refused:
            if last is None or isinstance(refused, LeaseLost) or is_outage(refused):
                raise
            # The last checkpoint was refused with the end: the end alone still counts the product.
            log.exception("job %s product %s: its last checkpoint could not be stored", job_id, item.sku)
            await writer.write(_without_last(finish))
        return True

    def _step_finished(self, step: Step, seconds: float) -> None:
        if self._observer is not None:
            self._observer.step_finished(step.value, seconds)

    def _tokens_spent(self, usage: dict[str, int], before: dict[str, int]) -> None:
        # A resumed product's checkpoint carries what earlier attempts spent: only the rest is new.
        if self._observer is not None:
            spent = {kind: total - before.get(kind, 0) for kind, total in usage.items()}
            self._observer.tokens_spent(spent)


def _checkpoint(state: ProductState) -> ItemCheckpoint:
    values: dict[str, object] = {"row_num": state.row_num}
    if state.extracted is not None:
        values["extracted"] = state.extracted.get("fields")
        values["sources"] = state.extracted.get("sources")
    if state.descriptions is not None:
        values["descriptions"] = state.descriptions
    return ItemCheckpoint(
        state.wip_id,
        step=state.step_done.value if state.step_done else None,
        checkpoint=state.checkpoint(),
        row_num=state.row_num,
        wip_status=state.wip_status(),
        product_values=values,
    )


def _without_last(finish: ItemFinish) -> ItemFinish:
    return ItemFinish(
        finish.wip_id,
        finish.sku,
        finish.error,
        finish.error_step,
        finish.duration,
        finish.eta,
        row_num=finish.row_num,
        token_usage=finish.token_usage,
        transient=finish.transient,
    )
