"""The widget's weight on a host page: gzipped bytes of everything it loads.

    python bench/widget_size.py        prints the table; exits 1 above the budget

The widget loads one file, widget/widget.js (its CSS, strings and the protocol client are
inside it; no fonts, images or audio files: the icon is an inline SVG path and the sound is
synthesised with WebAudio). At run time it also fetches a small JSON config and opens a
WebSocket; those are data, not code, and are not counted.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 15 * 1024  # bytes, gzipped
LOADED = [ROOT / "widget" / "widget.js"]


def gzipped(data: bytes) -> int:
    """The larger of gzip -9 and gzip -6 (what servers commonly use): the budget must hold
    however the file is served."""
    return max(len(gzip.compress(data, compresslevel=level, mtime=0)) for level in (6, 9))


def main() -> int:
    total_raw = total_gz = 0
    print(f"{'file':<24}{'raw':>10}{'gzipped':>10}")
    for path in LOADED:
        data = path.read_bytes()
        total_raw += len(data)
        total_gz += gzipped(data)
        print(f"{path.relative_to(ROOT).as_posix():<24}{len(data):>10}{gzipped(data):>10}")
    print(f"{'total':<24}{total_raw:>10}{total_gz:>10}")
    spare = BUDGET - total_gz
    verdict = f"OK, {spare} bytes to spare" if spare >= 0 else f"OVER by {-spare} bytes"
    print(f"budget: {BUDGET} bytes gzipped: {verdict}")
    return 0 if spare >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
