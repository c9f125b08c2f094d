"""The one exception hierarchy of the bridge.

Every failure is classified once, where it is detected, so that the layers
above only ask "retry, defer, refresh, or give up?"::

    BridgeError
    ├── RetryableError            transient: retry with jittered backoff
    │   ├── TransportError        timeout, connection reset, HTTP 5xx, non-JSON body
    │   ├── ProviderBusy          provider says "try later" (Zalo -100, -200, -214)
    │   └── DeferError            rate limit, quota or night window: try again at `until`
    │       └── QuotaExhausted    a daily or monthly quota: until it resets
    ├── AuthError                 token invalid/expired: refresh once, then retry once
    └── PermanentError            never retried as is
        ├── BadInputError         malformed event, unmapped status, template error → DLQ
        ├── RecipientError        this channel cannot reach this person → next channel
        └── ConfigError           credentials, permissions, billing: needs a person

`code` carries the upstream error code when there is one (e.g. Zalo's -118).
"""

from __future__ import annotations

from datetime import datetime


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def error_class(self) -> str:
        """Stable, low-cardinality name used in DLQ headers and metric labels."""
        return type(self).__name__


class RetryableError(BridgeError):
    retryable = True


class TransportError(RetryableError):
    """The request may or may not have reached the provider."""


class ProviderBusy(RetryableError):
    """The provider answered but asked us to try again later."""


class DeferError(RetryableError):
    """Not now, but certainly later: rate limit, daily quota, night window."""

    def __init__(self, message: str, *, until: datetime, code: int | None = None) -> None:
        super().__init__(message, code=code)
        self.until = until


class NightWindow(DeferError):
    """Zalo sends no ZNS at night (-133, OA -234): routine, not a failure of the channel."""


class QuotaExhausted(DeferError):
    """The channel's daily or monthly quota is used up: it resets at `until`, and another
    channel may still reach the citizen today (`dispatch.quota_fallback`)."""


class AuthError(BridgeError):
    """The access token was refused; refresh once and retry once."""


class PermanentError(BridgeError):
    pass


class BadInputError(PermanentError):
    """The input itself is wrong; retrying the same bytes can never succeed."""


class RecipientError(PermanentError):
    """This channel cannot reach this recipient (no Zalo account, not a follower…)."""


class ConfigError(PermanentError):
    """Configuration, permission or billing problem that only a person can fix."""
