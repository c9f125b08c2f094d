"""Wait on conditions with a timeout instead of sleeping for luck."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05,
             message: str = "condition") -> T:
    """Poll `condition` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    last = condition()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last={last!r})")
        time.sleep(interval)
        last = condition()
    assert last is not None  # truthy
    return last
