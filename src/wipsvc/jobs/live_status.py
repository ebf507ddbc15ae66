"""A running job's status as the instance that runs it knows it, so that polls read no database.

The route clients poll asks for a job's row and its finished products' results. While this
instance runs the job, every change to them goes through its own writes: each group-commit batch
returns the job's row as it left it and the results it kept (`Committed`), and the one change made
by others while the job runs, a cancel request, reaches the runner (directly, by signal or at the
next renewal). So the runner keeps the job as last committed, and a poll here is answered from it:
on a loop busy with a thousand products, each database read of a poll waited several turns of it.

What this answers is what the database held at the batch's commit, as a read then would have
seen. Two limits keep it from going stale: it is answered only while the runner certainly holds
the job (its lease not lost, and certainly valid by its own clock: a paused or cut-off owner falls
back to the database, where its successor's progress is), and the runner drops it the moment the
job stops running here (ended, paused, lost). A cancel requested through another instance shows
here once its signal arrives (~0.1 s); through this instance, before the cancel's answer is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from wipsvc.store import JobRecord
from wipsvc.store.ledger_batch import Committed
from wipsvc.store.ledger_results import join_results


class LiveStatus:
    def __init__(self, job: JobRecord, results: dict[int, str], held: Callable[[], bool]) -> None:
        """``job`` and ``results`` (JSON by wip id) as read once the run started; ``held`` says
        whether the runner certainly still holds the job (`LeaseGuard.certainly_held`)."""
        self._job = job
        self._results = dict(results)
        self._joined: str | None = None  # the results as one array, until the next batch
        self._held = held

    def committed(self, batch: Committed) -> None:
        """A batch of this job's writes has committed (batches commit one at a time)."""
        # A cancel learnt after this batch's commit but before this call stays learnt.
        cancelled = batch.job.cancel_requested or self._job.cancel_requested
        self._job = replace(batch.job, cancel_requested=cancelled)
        if batch.results:
            self._results.update(batch.results)
            self._joined = None

    def cancel_requested(self) -> None:
        """The job's cancellation has been requested (and committed)."""
        self._job = replace(self._job, cancel_requested=True)

    def current(self) -> tuple[JobRecord, str] | None:
        """The job and its results as a JSON array (submission order), or None once the job is not
        certainly held: then only the database knows."""
        if not self._held():
            return None
        if self._joined is None:
            results = self._results
            self._joined = join_results(results[wip_id] for wip_id in self._job.wip_ids if wip_id in results)
        return self._job, self._joined
