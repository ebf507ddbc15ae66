"""Running an Apps Script cleaner that is meant to fail, in the adapter tests."""

from __future__ import annotations

from typing import Protocol

import pytest

from wipsvc.domain.errors import StepError


class ClosableCleaner(Protocol):
    async def run(self, *, row_num: int, sku: str) -> None: ...

    async def aclose(self) -> None: ...


async def failed_run(cleaner: ClosableCleaner, *, row_num: int = 2, sku: str = "SKU-1") -> StepError:
    """Clean one row, which must fail with a ``StepError``, closing the cleaner either way: the error."""
    try:
        with pytest.raises(StepError) as caught:
            await cleaner.run(row_num=row_num, sku=sku)
    finally:
        await cleaner.aclose()
    return caught.value
