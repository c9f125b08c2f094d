"""``onestop-bridge qr CODE --out FILE.png``: the QR code the desk prints on the receipt.

The QR carries the same link as the RECEIVED notice (`templates.lookup_url`, default
``https://zalo.me/{oa_id}?tra-cuu={code}``): scanning it opens the OA's chat in Zalo.
Zalo documents no way to prefill a message from a link, so the code travels in the
query string: if the citizen sends the link (or any text holding the code) to the OA,
the bridge finds the code in it and answers with the status. The code itself is also
printed on the receipt for typing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import quote

import segno

from bridge.citizen.text import find_codes
from bridge.errors import ConfigError
from bridge.settings import Settings, load_settings


def lookup_link(settings: Settings, code: str) -> str:
    return settings.templates.lookup_url.format(oa_id=settings.oa.oa_id,
                                                code=quote(code, safe=""))


def draw(url: str, out: Path, *, scale: int = 8) -> None:
    # Level M survives a smudged thermal print; the quiet zone of 4 modules is the standard.
    qr = segno.make(url, error="m", micro=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    qr.save(str(out), scale=scale, border=4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onestop-bridge qr",
                                     description="Draw the receipt QR code for a dossier.")
    parser.add_argument("code", help="dossier code, e.g. 000.00.23.H39-240612-0001")
    parser.add_argument("--out", required=True, help="output file (.png, .svg or .pdf)")
    parser.add_argument("--scale", type=int, default=8, help="pixels per module (default 8)")
    parser.add_argument("--config", help="TOML configuration file")
    args = parser.parse_args(argv)
    codes = find_codes(args.code)
    if len(codes) != 1:
        print(f"onestop-bridge qr: {args.code!r} is not one dossier code "
              "(<agency code>-<yymmdd>-<4 digits>)", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"onestop-bridge qr: {exc}", file=sys.stderr)
        return 2
    url = lookup_link(settings, codes[0])
    draw(url, Path(args.out), scale=args.scale)
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
