"""Create or update a Kafka Connect connector from a `{"name":…, "config":{…}}` file.

    python deploy/debezium/register.py http://connect:8083 deploy/debezium/onestop-dossiers.json

Uses `PUT /connectors/<name>/config`, which creates the connector or replaces its config,
so running it again after editing the file is safe. Waits for the Connect REST API to come
up (it takes a while after the worker starts). Standard library only: it runs in the bridge
image and on any host with Python 3.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


def load(path: Path) -> tuple[str, dict[str, str]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return str(document["name"]), dict(document["config"])


def put_config(base_url: str, name: str, config: dict[str, str], timeout_s: float = 10.0) -> int:
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/connectors/{name}/config",
        data=json.dumps(config).encode("utf-8"),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (operator URL)
        return int(response.status)


def register(base_url: str, path: Path, wait_s: float = 300.0,
             pause: Callable[[float], None] = time.sleep) -> int:
    name, config = load(path)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            status = put_config(base_url, name, config)
        except urllib.error.HTTPError as exc:
            # 4xx is a bad config: retrying will not help. 5xx/409: the worker is rebalancing.
            if 400 <= exc.code < 500 and exc.code != 409:
                print(f"connector {name}: HTTP {exc.code}: {exc.read().decode(errors='replace')}",
                      file=sys.stderr)
                return 1
            error = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            error = str(exc)
        else:
            print(f"connector {name}: {'created' if status == 201 else 'updated'}")
            return 0
        if time.monotonic() > deadline:
            print(f"connector {name}: Kafka Connect not ready after {wait_s:.0f} s ({error})",
                  file=sys.stderr)
            return 1
        pause(2.0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    return register(argv[0], Path(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
