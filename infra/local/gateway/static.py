"""Static folders (the demo page, the widget, the console), served with caching disabled so a
page reload always shows the file as it is on disk."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aiohttp import web


class StaticFiles:
    """URL prefix -> folder; the longest matching prefix wins."""

    def __init__(self, dirs: Mapping[str, Path] | None) -> None:
        self.dirs = {
            prefix if prefix.endswith("/") else prefix + "/": Path(folder).resolve()
            for prefix, folder in (dirs or {}).items()
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.json_response({"message": "Not Found"}, status=404)
        target = self.target(request.path)
        if target is None:
            return web.json_response({"message": "Not Found"}, status=404)
        return web.FileResponse(target, headers={"Cache-Control": "no-store"})

    def target(self, url_path: str) -> Path | None:
        """Map a (decoded) URL path to a file, longest prefix first; None if none.

        Traversal is refused twice: ``..`` segments are rejected outright and
        the resolved file must still lie inside the folder.
        """
        candidates = (url_path, url_path + "/")  # "/widget" also matches "/widget/"
        for prefix in sorted(self.dirs, key=len, reverse=True):
            match = next((c for c in candidates if c.startswith(prefix)), None)
            if match is None:
                continue
            root = self.dirs[prefix]
            rest = match[len(prefix):]
            parts = [p for p in rest.split("/") if p]
            if any(p in (".", "..") or "\\" in p or "\x00" in p for p in parts):
                return None
            target = root.joinpath(*parts).resolve()
            if not target.is_relative_to(root):
                return None
            if target.is_dir():
                target = target / "index.html"
            return target if target.is_file() else None
        return None
