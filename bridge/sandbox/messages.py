"""The log of accepted sends, as served by ``GET /sandbox/messages``.

Bounded (oldest records are evicted first) and indexed by message id (for the ZNS status
API) and by tracking id (the bridge's idempotency key, which tests filter on), so that the
send path never scans the list.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

DEFAULT_MAX_MESSAGES = 2_000_000


@dataclass(slots=True)
class MessageRecord:
    channel: str  # "zalo_oa" | "zns" | "sms"
    message_id: str
    at: float  # epoch seconds
    phone: str | None = None
    user_id: str | None = None
    tracking_id: str | None = None
    text: str | None = None
    template_id: str | None = None
    template_data: dict[str, Any] | None = None
    delivery_time_ms: int | None = None  # ZNS: when the citizen's phone got it
    extra: dict[str, Any] | None = field(default=None)
    seq: int = 0  # assigned by MessageLog.add: consecutive, 1-based

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "channel": self.channel,
            "phone": self.phone,
            "user_id": self.user_id,
            "tracking_id": self.tracking_id,
            "text": self.text,
            "template_id": self.template_id,
            "template_data": self.template_data,
            "message_id": self.message_id,
            "at": datetime.fromtimestamp(self.at, timezone.utc).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
        }
        if self.delivery_time_ms is not None:
            out["delivery_time"] = str(self.delivery_time_ms)
        if self.extra:
            out.update(self.extra)
        return out


class MessageLog:
    def __init__(self, max_messages: int = DEFAULT_MAX_MESSAGES) -> None:
        self.max_messages = max_messages
        self._records: deque[MessageRecord] = deque()
        self._by_id: dict[str, MessageRecord] = {}
        # tracking id -> record, or list of records when the same key was sent twice
        self._by_tracking: dict[str, MessageRecord | list[MessageRecord]] = {}
        self._seq = 0
        self.per_channel: dict[str, int] = {"zalo_oa": 0, "zns": 0, "sms": 0}

    def __len__(self) -> int:
        return len(self._records)

    @property
    def last_seq(self) -> int:
        return self._seq

    def add(self, record: MessageRecord) -> None:
        self._seq += 1
        record.seq = self._seq
        if len(self._records) >= self.max_messages:
            self._evict(self._records.popleft())
        self._records.append(record)
        self._by_id[record.message_id] = record
        self.per_channel[record.channel] = self.per_channel.get(record.channel, 0) + 1
        key = record.tracking_id
        if key is not None:
            known = self._by_tracking.get(key)
            if known is None:
                self._by_tracking[key] = record
            elif isinstance(known, list):
                known.append(record)
            else:
                self._by_tracking[key] = [known, record]

    def _evict(self, old: MessageRecord) -> None:
        self._by_id.pop(old.message_id, None)
        key = old.tracking_id
        if key is None:
            return
        known = self._by_tracking.get(key)
        if isinstance(known, list):
            known.remove(old)
            if len(known) == 1:
                self._by_tracking[key] = known[0]
        else:
            self._by_tracking.pop(key, None)

    def _newer_than(self, seq: int) -> list[MessageRecord]:
        """Records after `seq`, walking back from the newest (cheap for pollers)."""
        newer: list[MessageRecord] = []
        for rec in reversed(self._records):
            if rec.seq <= seq:
                break
            newer.append(rec)
        newer.reverse()
        return newer

    def get(self, message_id: str) -> MessageRecord | None:
        return self._by_id.get(message_id)

    def clear(self) -> None:
        self._records.clear()
        self._by_id.clear()
        self._by_tracking.clear()
        self._seq = 0
        self.per_channel = {"zalo_oa": 0, "zns": 0, "sms": 0}

    def query(
        self,
        *,
        channel: str | None = None,
        phone: str | None = None,
        user_id: str | None = None,
        tracking_id: str | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        candidates: Iterable[MessageRecord]
        if tracking_id is not None:
            known = self._by_tracking.get(tracking_id)
            candidates = [] if known is None else (known if isinstance(known, list) else [known])
        elif after_seq is not None:
            candidates = self._newer_than(after_seq)
        else:
            candidates = self._records
        out: list[MessageRecord] = []
        for rec in candidates:
            if after_seq is not None and rec.seq <= after_seq:
                continue
            if channel is not None and rec.channel != channel:
                continue
            if phone is not None and rec.phone != phone:
                continue
            if user_id is not None and rec.user_id != user_id:
                continue
            out.append(rec)
            if limit is not None and len(out) >= limit:
                break
        return out
