"""`python -m connectors …` = `onestop-bridge capture …` (used by the crash tests)."""

from __future__ import annotations

import sys

from connectors.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
