"""The agent console's bundle (infra/bundle.py): built from console/src/, loaded as one file.

No stack needed. The widget's bundle is checked in test_widget.py (with its size budget).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.frames import SERVER_FRAMES
from infra import bundle

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "console" / "src"


def test_console_bundle_is_what_its_sources_give_and_parses():
    build = subprocess.run([sys.executable, "-m", "infra.bundle", "--check", "console"], cwd=ROOT,
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    if shutil.which("node"):
        check = subprocess.run(["node", "--check", str(bundle.CONSOLE.out)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_every_console_source_is_in_the_bundle_once():
    # A file added to console/src/ but not to CONSOLE_SOURCES would silently not ship.
    assert sorted(bundle.CONSOLE_SOURCES) == sorted(path.stem for path in SRC.glob("*.js"))
    assert len(set(bundle.CONSOLE_SOURCES)) == len(bundle.CONSOLE_SOURCES)
    assert bundle.CONSOLE_SOURCES[-1] == "main"  # the start, once every view has registered


def test_the_page_loads_chatlink_and_the_one_bundle_and_no_inline_script():
    html = (ROOT / "console" / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert [re.search(r'src="([^"]+)"', attrs).group(1) for attrs, _ in scripts] == [
        "/widget/chatlink.js", "/console/console.js"]
    assert all(not body.strip() for _, body in scripts)  # CSP: script-src 'self'
    assert "script-src 'self'" in html


def test_console_views_register_only_server_frame_types_each_once():
    sources = "".join(path.read_text() for path in SRC.glob("*.js"))
    registered = re.findall(r"^\s*on\('([a-z_]+)'", sources, flags=re.M)
    assert registered, "no frame handlers found: the registry's call changed?"
    assert set(registered) <= set(SERVER_FRAMES), set(registered) - set(SERVER_FRAMES)
    assert len(registered) == len(set(registered)), "a frame type handled in two views"
    # the console's core frames, each in its view (not in a switch)
    core = {"assigned", "message", "closed", "transfer_offer", "error", "status", "overview"}
    assert core <= set(registered)


def test_without_terser_the_build_says_to_run_make_setup(monkeypatch, capsys):
    monkeypatch.setattr(bundle, "TERSER", ROOT / ".tools" / "no-such-terser")
    with pytest.raises(bundle.TerserMissing, match="make setup"):
        bundle.terser_command()
    assert bundle.main(["--check", "console"]) == 2
    assert "make setup" in capsys.readouterr().err
