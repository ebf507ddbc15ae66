"""How an adapter reports a failed call: once, classified, without retrying it itself."""

from __future__ import annotations


class StepError(Exception):
    """A product-level failure; the batch goes on.

    ``transient`` errors (timeouts, 5xx, an unusable LLM answer) may succeed when the step is
    tried again; permanent ones (a 404 page, invalid data, a script error) will not.
    ``retry_after`` is the wait the server asked for, in seconds, when it gave one.
    ``throttled``: a 429 that has paused the call's quota bucket, so that the next try waits
    there (see :mod:`wipsvc.pipeline.retry`).
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        retry_after: float | None = None,
        throttled: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient or throttled
        self.retry_after = retry_after
        self.throttled = throttled
