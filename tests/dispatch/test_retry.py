"""The retry policy on its own: what is retried, how long it waits, when it gives up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dispatch_fakes import FakeClock

from bridge.dispatch.retry import RetryPolicy
from bridge.errors import (
    AuthError, ConfigError, DeferError, ProviderBusy, RecipientError, TransportError,
)
from bridge.settings import DispatchSettings

CFG = DispatchSettings(attempts=4, backoff_initial_s=0.5, backoff_max_s=3.0)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(CFG)
    for attempt, low in ((1, 0.5), (2, 1.0), (3, 2.0)):
        values = [policy.backoff_s(attempt) for _ in range(200)]
        assert all(low <= v <= min(3.0, low + 0.5) for v in values)
        assert len(set(values)) > 1  # jittered, so parallel workers do not retry in lockstep
    assert policy.backoff_s(10) == 3.0


@pytest.mark.parametrize("exc, retried", [
    (TransportError("t"), True), (ProviderBusy("b"), True),
    (AuthError("a"), False), (RecipientError("r"), False), (ConfigError("c"), False),
])
def test_what_is_retried(exc: Exception, retried: bool) -> None:
    assert RetryPolicy(CFG).should_retry(exc) is retried


def test_short_deferrals_are_waited_out_long_ones_go_up() -> None:
    clock = FakeClock()
    policy = RetryPolicy(CFG, sleep=clock.sleep, wall=clock.wall)
    assert policy.should_retry(DeferError("429", until=clock.wall() + timedelta(seconds=2)))
    assert not policy.should_retry(DeferError("-32", until=clock.wall() + timedelta(seconds=60)))
    calls = []

    def fn() -> str:
        calls.append(clock.wall())
        if len(calls) == 1:
            raise DeferError("429", until=clock.wall() + timedelta(seconds=2))
        return "ok"

    assert policy.run(fn) == "ok" and clock.sleeps == [pytest.approx(2.0)]


def test_gives_up_after_the_budget_with_the_last_error() -> None:
    clock = FakeClock()
    policy = RetryPolicy(CFG, sleep=clock.sleep, wall=clock.wall)
    errors = [TransportError("1"), ProviderBusy("2"), TransportError("3"), ProviderBusy("4")]
    calls = iter(errors)

    def fn() -> None:
        raise next(calls)

    with pytest.raises(ProviderBusy, match="4"):
        policy.run(fn)
    assert len(clock.sleeps) == 3
