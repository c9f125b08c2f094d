"""A database's answers that no retry can change: the settings are wrong.

The connectors and the bridge's ledger retry a failed connection with backoff, as they must
through a restart or a network cut. A login the server refuses is different: retrying only
piles up failed logins (which can lock an account) while the service looks healthy. Matched
on the servers' English texts (their default); a server speaking another language is
retried as before.
"""

from __future__ import annotations

from bridge.errors import ConfigError

# Only answers that no restart of the server explains: SQL Server's "Login failed" and
# "Cannot open database", and Oracle's ORA-12505/12514, also come from a server still
# recovering or registering after a restart, so they stay retried.
REFUSED = (
    "password authentication failed", "no pg_hba.conf entry", "does not exist",  # PostgreSQL
    "Access denied for user", "Unknown database",                                  # MySQL
    "ORA-01017",                                                                  # Oracle
)


def refusal(exc: BaseException, setting: str = "source.dsn") -> ConfigError | None:
    """A ConfigError saying what the server refused, or None for anything worth retrying."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    if not any(marker in text for marker in REFUSED):
        return None
    return ConfigError(f"the database refused {setting}: {text.splitlines()[0]}; fix the "
                       "setting (or the role, pg_hba.conf or database on the server) and start again")
