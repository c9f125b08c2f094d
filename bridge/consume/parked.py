"""Dossiers with a notification waiting in the retry topic ("parked").

While a dossier has one, its later notifications must wait behind it, or a citizen
could read "result ready" before "documents to add". The durable truth is the ledger
(status deferred/failed); this is its in-memory mirror:

- *local* entries are added by a worker the moment it parks a notification, before it
  takes its next item (a dossier always lands on the same worker, so its order is
  exact), and removed when this process settles that notification; they are dropped
  with their partition on a rebalance;
- *hints* are loaded from the ledger at start and on each assignment (parked by an
  earlier run or another instance); a hint alone is checked against the ledger before
  it holds anything back, so a stale hint cannot park a dossier forever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    tp: TP | None  # None: a hint from the ledger


class Parked:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_dossier: dict[str, dict[int, _Entry]] = {}

    def blocks(self, dossier_key: str, seq: int,
               confirm: Callable[[str, int], bool]) -> bool:
        """Must the notification `seq` of this dossier wait behind an earlier one?"""
        with self._lock:
            earlier = [e for s, e in self._by_dossier.get(dossier_key, {}).items() if s < seq]
        if not earlier:
            return False
        if any(e.tp is not None for e in earlier):
            return True
        if confirm(dossier_key, seq):
            return True
        with self._lock:  # stale hints: the ledger says nothing earlier waits
            entries = self._by_dossier.get(dossier_key, {})
            for e in earlier:
                if entries.get(e.seq) is e:
                    del entries[e.seq]
            if not entries:
                self._by_dossier.pop(dossier_key, None)
        return False

    def add(self, dossier_key: str, seq: int, tp: TP) -> None:
        with self._lock:
            self._by_dossier.setdefault(dossier_key, {})[seq] = _Entry(seq, tp)

    def discard(self, dossier_key: str, seq: int) -> None:
        with self._lock:
            entries = self._by_dossier.get(dossier_key)
            if entries is not None:
                entries.pop(seq, None)
                if not entries:
                    del self._by_dossier[dossier_key]

    def reload(self, hints: dict[str, set[int]]) -> None:
        """Replace the hints with what the ledger says now; local entries stay."""
        with self._lock:
            self._keep(lambda e: e.tp is not None)
            for key, seqs in hints.items():
                entries = self._by_dossier.setdefault(key, {})
                for seq in seqs:
                    entries.setdefault(seq, _Entry(seq, None))

    def forget(self, tps: set[TP]) -> None:
        """Drop local entries of partitions this process no longer owns."""
        with self._lock:
            self._keep(lambda e: e.tp not in tps)

    def _keep(self, wanted: Callable[[_Entry], bool]) -> None:
        """Drop the entries that are not `wanted` (and dossiers left without any); lock held."""
        for key in list(self._by_dossier):
            kept = {s: e for s, e in self._by_dossier[key].items() if wanted(e)}
            if kept:
                self._by_dossier[key] = kept
            else:
                del self._by_dossier[key]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._by_dossier.values())
