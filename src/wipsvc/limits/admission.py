"""Who is told when a call is admitted to a resource that serves a fixed number of calls at once.

Apps Script runs at most 30 executions per user; a product's call waits for a free one. The
ETA models that queue, and it needs to know when a product's call was admitted (from then on it
is served; before, it waited). A context variable, like the call's priority
(:mod:`wipsvc.limits.waiting`): the job sets it for each product's task, and the adapters in
between pass it on without knowing it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

# Called with the bucket's name when a call of the current context is admitted through a bucket
# with a concurrency cap.
call_admitted: ContextVar[Callable[[str], None] | None] = ContextVar("call_admitted", default=None)


def tell_admitted(bucket: str) -> None:
    listener = call_admitted.get()
    if listener is not None:
        listener(bucket)
