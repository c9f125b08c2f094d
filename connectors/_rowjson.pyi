# The native event path (connectors/_rowjson.c); built with the compiled hot path.
from collections.abc import Callable
from typing import Any

class Encoder:
    def __init__(self, columns: tuple[tuple[bytes, int, int, Callable[[str], Any] | None, bytes], ...],
                 key: tuple[int, bytes, bytes] | None, dumps: Callable[[Any], bytes],
                 clock: Callable[[], int] | None = None) -> None: ...
    def encode(self, payload: bytes, frame: tuple[bytes, ...], lsn: int) -> tuple[bytes, bytes | None] | None: ...
    def produce(self, payload: bytes, frame: tuple[bytes, ...], lsn: int, producer: Any, topic: str,
                callback: Callable[..., None]) -> bool: ...
