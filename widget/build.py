"""Build widget/widget.js, the one file a site embeds, from the sources.

    python widget/build.py           write widget/widget.js
    python widget/build.py --check   exit 1 if widget/widget.js is not what the sources give

Minified with terser (pinned in infra/local/package.json; ``make setup`` installs it into
.tools/) when Node.js and terser are there; otherwise with the conservative Python minifier
below, which needs nothing but gives a bigger file. The bundle's first line records a hash of
the sources and which minifier made it: without terser, ``--check`` can still tell whether
the bundle was built from the current sources (it compares that hash), it just cannot
reproduce terser's output byte for byte.

The bundle is one closure: ``widget/chatlink.js`` (the protocol client the agent console
also loads as-is from /widget/chatlink.js), the CSS as a string, the strings, then
``src/widget.js``. chatlink.js sees the closure's ``CTC_BUNDLE`` and attaches itself there,
so the page gets no global but ``window.ChatWidget``.

The Python minifier is deliberately conservative: nothing is renamed or rewritten. A small
tokenizer keeps strings, template literals and regular expressions verbatim; in the code
between them comments and spaces no token needs go, and lines are joined. Joining two lines
cannot change what a program means except where automatic semicolon insertion applied:
there the joined text either no longer parses (so ``node --check`` runs on the result when
Node.js is installed, and the tests run it too) or the break follows a word like ``return``
(or precedes ``++``/``--``), where it is kept. The sources end statements with ``;``.
gzip does the rest; ``bench/widget_size.py`` checks the budget.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "widget.js"
TERSER = HERE.parent / ".tools" / "node_modules" / "terser" / "bin" / "terser"
# Safe for a script that is one closure. Of properties, only the private ones are renamed:
# ChatLink's underscore methods (``_connect``, ``_pump``...), which nothing outside the bundle
# can reach (the console loads chatlink.js as it is, not this bundle).
TERSER_ARGS = ["--compress", "passes=2", "--mangle", "--mangle-props", "regex=/^_[a-z]/", "--ecma", "2020",
               "--format", "ascii_only=true,comments=false"]
HEADER = "/*! click-to-chat widget (widget/build.py)"
_STAMP = re.compile(r"sources ([0-9a-f]{16}), (\w+) \*/")
SOURCES = {
    "chatlink": HERE / "chatlink.js",
    "strings": HERE / "src" / "strings.js",
    "css": HERE / "src" / "widget.css",
    "widget": HERE / "src" / "widget.js",
}

# After these characters (or keywords) a "/" starts a regular expression, not a division.
_REGEX_AFTER_CHARS = set("(,=:[!&|?{};+-*%<>~^")
_REGEX_AFTER_WORDS = {"return", "typeof", "case", "in", "of", "new", "delete", "void", "throw",
                      "else", "do", "instanceof", "yield", "await"}


def js_tokens(src: str) -> list[tuple[str, str]]:
    """Split JavaScript into ("code", text) and ("lit", text) pieces, dropping comments.
    Literals are strings, template literal text and regular expressions, kept verbatim."""
    out: list[tuple[str, str]] = []
    code: list[str] = []
    i, n = 0, len(src)
    braces: list[int] = []  # brace depth at each `${` of enclosing template literals
    depth = 0

    def literal(text: str) -> None:
        out.append(("code", "".join(code)))
        code.clear()
        out.append(("lit", text))

    def before() -> str:
        text = "".join(code).rstrip()
        if text:
            return text
        for kind, piece in reversed(out):
            if piece.strip():
                return piece.rstrip() if kind == "code" else "a"  # after a literal: division
        return ""

    def read_string(start: int, quote: str) -> int:
        j = start + 1
        while j < n:
            c = src[j]
            if c == "\\":
                j += 2
                continue
            if c == quote:
                return j + 1
            if c == "\n" and quote != "`":
                raise ValueError(f"unterminated string at {start}")
            if quote == "`" and src.startswith("${", j):
                return j  # stop before `${`: code follows
            j += 1
        raise ValueError(f"unterminated string at {start}")

    while i < n:
        c = src[i]
        if c in "'\"":
            end = read_string(i, c)
            literal(src[i:end])
            i = end
        elif c == "`" or (c == "}" and braces and braces[-1] == depth):
            if c == "}":
                braces.pop()
                depth -= 1
            end = read_string(i, "`")
            if src.startswith("${", end):
                depth += 1
                braces.append(depth)
                end += 2
            literal(src[i:end])
            i = end
        elif src.startswith("//", i):
            while i < n and src[i] != "\n":
                i += 1
        elif src.startswith("/*", i):
            end = src.find("*/", i + 2)
            if end < 0:
                raise ValueError(f"unterminated comment at {i}")
            code.append(" ")
            i = end + 2
        elif c == "/":
            prev = before()
            word = re.search(r"[A-Za-z_$][\w$]*$", prev)
            if not prev or prev[-1] in _REGEX_AFTER_CHARS or (word and word.group() in _REGEX_AFTER_WORDS):
                j, in_class = i + 1, False
                while j < n:
                    ch = src[j]
                    if ch == "\\":
                        j += 2
                        continue
                    if ch == "\n":
                        raise ValueError(f"unterminated regex at {i}")
                    if ch == "[":
                        in_class = True
                    elif ch == "]":
                        in_class = False
                    elif ch == "/" and not in_class:
                        break
                    j += 1
                j += 1
                while j < n and src[j].isalnum():
                    j += 1
                literal(src[i:j])
                i = j
            else:
                code.append(c)
                i += 1
        else:
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            code.append(c)
            i += 1
    out.append(("code", "".join(code)))
    return [piece for piece in out if piece[1]]


_WORD = re.compile(r"[A-Za-z0-9_$\\]")
# A line break must stay after these words (``return\nx`` is ``return; x``) ...
_RESTRICTED = re.compile(r"(?<![\w$.])(return|break|continue|throw|yield|async|let|get|set|static)$")


def _squeeze(code: str) -> str:
    """Drop spaces that no token needs: one stays between two word characters and between
    "+ +" / "- -" (which would fuse into ++ / --); none at the edges, next to literals."""
    pieces = re.split(r"([ \t]+)", code)
    out: list[str] = []
    for k, piece in enumerate(pieces):
        if k % 2 == 0:
            out.append(piece)
            continue
        left = "".join(out)[-1:]
        right = pieces[k + 1][:1] if k + 1 < len(pieces) else ""
        keep = (_WORD.match(left) and _WORD.match(right)) or (left and left in "+-" and right == left)
        out.append(" " if keep else "")
    return "".join(out)


def _ascii(literal: str) -> str:
    """Escape non-ASCII characters (\\uXXXX, surrogate pairs beyond the BMP) so the bundle is
    ASCII: it then reads the same whatever charset the host page or the server declares."""
    out = []
    for char in literal:
        code = ord(char)
        if code < 128:
            out.append(char)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return "".join(out)


def minify_js(src: str) -> str:
    text = ""
    for kind, piece in js_tokens(src):
        if kind == "lit":
            if "\n" in piece:
                raise ValueError("multi-line template literals are not supported")
            text += _ascii(piece)
            continue
        # A literal needs no space beside it: `return'x'`, `'a'in b` and `return/x/` parse.
        text += "\n".join(_squeeze(line) for line in piece.split("\n"))
    out: list[str] = []
    for line in (line.strip() for line in text.split("\n")):
        if not line:
            continue
        if not out or _RESTRICTED.search(out[-1]) or line.startswith(("++", "--")):
            out.append(line)
        elif _WORD.match(out[-1][-1]) and _WORD.match(line[0]):
            out[-1] += " " + line
        else:
            out[-1] += line
    return "\n".join(out) + "\n"


def minify_css(src: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    text = re.sub(r"\s+", " ", text)
    # Never touch the space before ":" (".a :focus" is not ".a:focus").
    text = re.sub(r"\s*([{};,>])\s*", r"\1", text)
    text = re.sub(r":\s+", ":", text)
    return text.replace(";}", "}").strip()


def _sources() -> dict[str, str]:
    return {name: path.read_text(encoding="utf-8") for name, path in SOURCES.items()}


def sources_hash(parts: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(parts):
        digest.update(name.encode() + b"\0" + parts[name].encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def _closure(parts: dict[str, str], js: Callable[[str], str]) -> str:
    return (
        "(function () {\n'use strict';\n"
        "if (window.ChatWidget && window.ChatWidget.version) return; // embedded twice\n"
        "const CTC_BUNDLE = {};\n"
        + js(parts["chatlink"])
        + "const CSS = " + json.dumps(minify_css(parts["css"])) + ";\n"
        + js(parts["strings"])
        + js(parts["widget"])
        + "})();\n"
    )


def terser_command() -> list[str] | None:
    """How to run the pinned terser, or None when Node.js or terser is missing (or
    CTC_NO_TERSER=1 asks for the Python minifier)."""
    node = shutil.which("node")
    if node is None or not TERSER.exists() or os.environ.get("CTC_NO_TERSER") == "1":
        return None
    return [node, str(TERSER), *TERSER_ARGS]


def _terser(code: str, command: list[str]) -> str:
    result = subprocess.run(command, input=code, capture_output=True, text=True, encoding="utf-8",
                            check=False)
    if result.returncode:
        raise RuntimeError(f"terser failed:\n{result.stderr.strip()}")
    return result.stdout.strip() + "\n"


def build(command: list[str] | None = None) -> str:
    """The bundle: terser's when ``command`` is given, else the Python minifier's."""
    parts = _sources()
    if command is None:
        body, made_by = _closure(parts, minify_js), "python"
    else:
        body, made_by = _terser(_closure(parts, lambda src: src.rstrip() + "\n"), command), "terser"
    return f"{HEADER} sources {sources_hash(parts)}, {made_by} */\n" + body


def stamp(bundle: str) -> tuple[str, str] | None:
    """(sources hash, minifier) recorded in a bundle's first line."""
    match = _STAMP.search(bundle.split("\n", 1)[0])
    return (match.group(1), match.group(2)) if match else None


def syntax_error(code: str) -> str | None:
    """What ``node --check`` says about ``code`` (None if it parses or Node is missing)."""
    node = shutil.which("node")
    if node is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "widget.js"
        path.write_text(code, encoding="utf-8")
        result = subprocess.run([node, "--check", str(path)], capture_output=True, text=True, check=False)
    return result.stderr.strip() or "node --check failed" if result.returncode else None


def main(argv: list[str]) -> int:
    command = terser_command()
    bundle = build(command)
    if not bundle.isascii():
        print("the bundle has non-ASCII characters outside string literals", file=sys.stderr)
        return 2
    problem = syntax_error(bundle)
    if problem:
        print(f"the bundle does not parse:\n{problem}", file=sys.stderr)
        return 2
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        recorded = stamp(current)
        if command is None and recorded and recorded[1] == "terser":
            # No terser here: it cannot be rebuilt byte for byte, but the sources must match.
            if recorded[0] != sources_hash(_sources()):
                print("widget/widget.js is out of date: run python widget/build.py (with terser: "
                      "make setup)", file=sys.stderr)
                return 1
            print("terser is not installed: checked that widget/widget.js was built from the current "
                  "sources, not its bytes", file=sys.stderr)
            return 0
        if current != bundle:
            print("widget/widget.js is out of date: run python widget/build.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(bundle, encoding="utf-8")
    made_by = "terser" if command else "the Python minifier (terser not installed: make setup)"
    print(f"wrote {OUT.relative_to(HERE.parent)}: {len(bundle.encode())} bytes, minified by {made_by}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
