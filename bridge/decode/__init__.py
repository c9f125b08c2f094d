"""Decoding of Debezium change-event values (pure, no I/O)."""
