"""Build the two scripts the browser loads from their sources, with the pinned terser.

    python -m infra.bundle                    write widget/widget.js and console/console.js
    python -m infra.bundle --check            exit 1 if either is not what its sources give
    python -m infra.bundle --check console    just one of them (widget or console)

Both are one closure around their sources, run through terser (pinned in
infra/local/package.json; ``make setup`` installs it into .tools/). There is no fallback:
the committed files must be exactly what the pinned terser makes of the sources, so that
``--check`` (run by the tests) can compare bytes.

* ``widget/widget.js``, the one file a site embeds: ``widget/chatlink.js`` (the protocol
  client the console also loads as-is from /widget/chatlink.js), the CSS as a string, the
  strings, then ``widget/src/widget.js``. chatlink.js sees the closure's ``CTC_BUNDLE`` and
  attaches itself there, so the page gets no global but ``window.ChatWidget``. Minified
  and mangled: every byte counts against the budget (``bench/widget_size.py``).
* ``console/console.js``, the agent console: ``console/src/*.js`` in the order of
  ``CONSOLE_SOURCES`` (state first, start last), sharing one closure and so no global.
  Compressed (comments and dead code go) but not mangled and printed readably: the console
  is loaded once per shift by a handful of agents and cached, so its size matters little,
  while an agent's bug report or a look in the browser's debugger must show the sources'
  names. The page keeps ``script-src 'self'``: the bundle is a file, never inline.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TERSER = ROOT / ".tools" / "node_modules" / "terser" / "bin" / "terser"
_FORMAT = "ascii_only=true,comments=false"  # ASCII: it reads the same whatever charset is declared

# The console's sources, in closure order: a file may use at load time only what the files
# before it declared (functions are hoisted; `const` and `let` are not).
CONSOLE_SOURCES = ("state", "common", "link", "alerts", "views", "session", "shift", "queue", "inbox",
                   "transfer", "chats", "conversation", "composer", "visitor", "notes", "visitors", "admin",
                   "banner", "team", "history", "settings", "reports", "main")


@dataclass(frozen=True)
class Bundle:
    """One built file: where it goes, what it is made of and how terser treats it."""

    name: str
    out: Path
    header: str
    sources: dict[str, Path]
    closure: Callable[[dict[str, str]], str]
    terser_args: tuple[str, ...]


def minify_css(src: str) -> str:
    """The widget's CSS as a compact string (it is injected into the shadow root)."""
    text = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    text = re.sub(r"\s+", " ", text)
    # Never touch the space before ":" (".a :focus" is not ".a:focus").
    text = re.sub(r"\s*([{};,>])\s*", r"\1", text)
    text = re.sub(r":\s+", ":", text)
    return text.replace(";}", "}").strip()


def _js(src: str) -> str:
    return src.rstrip() + "\n"


def _widget_closure(parts: dict[str, str]) -> str:
    return (
        "(function () {\n'use strict';\n"
        "if (window.ChatWidget && window.ChatWidget.version) return; // embedded twice\n"
        "const CTC_BUNDLE = {};\n"
        + _js(parts["chatlink"])
        + "const CSS = " + json.dumps(minify_css(parts["css"])) + ";\n"
        + _js(parts["strings"])
        + _js(parts["widget"])
        + "})();\n"
    )


def _console_closure(parts: dict[str, str]) -> str:
    body = "".join(_js(parts[name]) for name in CONSOLE_SOURCES)
    return "(function () {\n'use strict';\n" + body + "})();\n"


WIDGET = Bundle(
    name="widget",
    out=ROOT / "widget" / "widget.js",
    header="/*! click-to-chat widget (infra/bundle.py) */",
    sources={
        "chatlink": ROOT / "widget" / "chatlink.js",
        "strings": ROOT / "widget" / "src" / "strings.js",
        "css": ROOT / "widget" / "src" / "widget.css",
        "widget": ROOT / "widget" / "src" / "widget.js",
    },
    closure=_widget_closure,
    # Safe for a script that is one closure. Of properties, only the private ones are renamed:
    # ChatLink's underscore methods (``_connect``, ``_pump``...), which nothing outside the
    # bundle can reach (the console loads chatlink.js as it is, not this bundle).
    terser_args=("--compress", "passes=2", "--mangle", "--mangle-props", "regex=/^_[a-z]/", "--ecma", "2020",
                 "--format", _FORMAT),
)

CONSOLE = Bundle(
    name="console",
    out=ROOT / "console" / "console.js",
    header="/*! click-to-chat agent console (infra/bundle.py): built from console/src/, do not edit */",
    sources={name: ROOT / "console" / "src" / f"{name}.js" for name in CONSOLE_SOURCES},
    closure=_console_closure,
    terser_args=("--ecma", "2020", "--format", _FORMAT + ",beautify=true"),
)

BUNDLES = {bundle.name: bundle for bundle in (WIDGET, CONSOLE)}


class TerserMissing(RuntimeError):
    """Node.js or the pinned terser is not installed."""


def terser_command() -> list[str]:
    """How to run the pinned terser; it is required (no fallback makes the same bytes)."""
    node = shutil.which("node")
    if node is None or not TERSER.exists():
        raise TerserMissing(f"terser is not installed ({TERSER.relative_to(ROOT)}"
                            f"{'' if node else ', and Node.js is missing'}): run make setup")
    return [node, str(TERSER)]


def build(bundle: Bundle) -> str:
    """The file's text: the header, then terser's output for the closure of the sources."""
    parts = {name: path.read_text(encoding="utf-8") for name, path in bundle.sources.items()}
    result = subprocess.run([*terser_command(), *bundle.terser_args], input=bundle.closure(parts),
                            capture_output=True, text=True, encoding="utf-8", check=False)
    if result.returncode:
        raise RuntimeError(f"terser failed on the {bundle.name} sources:\n{result.stderr.strip()}")
    return bundle.header + "\n" + result.stdout.strip() + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    names = [arg for arg in argv if arg != "--check"] or list(BUNDLES)
    unknown = [name for name in names if name not in BUNDLES]
    if unknown:
        print(f"unknown bundle {', '.join(unknown)}: choose from {', '.join(BUNDLES)}", file=sys.stderr)
        return 2
    stale = []
    for name in names:
        bundle = BUNDLES[name]
        try:
            text = build(bundle)
        except TerserMissing as exc:
            print(exc, file=sys.stderr)
            return 2
        where = bundle.out.relative_to(ROOT).as_posix()
        if check:
            current = bundle.out.read_text(encoding="utf-8") if bundle.out.exists() else ""
            if current != text:
                stale.append(where)
            continue
        bundle.out.write_text(text, encoding="utf-8")
        print(f"wrote {where}: {len(text.encode())} bytes")
    if stale:
        print(f"out of date: {', '.join(stale)}: run python -m infra.bundle", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
