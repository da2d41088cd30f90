"""``.chalice/config.json``: the stage settings Chalice reads, looked up and updated the way it does."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.deploy import ROOT, DeployError


def load_chalice_config(root: Path = ROOT) -> dict[str, Any]:
    return dict(json.loads((root / ".chalice" / "config.json").read_text()))


def stage_config(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    stages = config.get("stages", {})
    if stage not in stages:
        raise DeployError(f"No stage {stage!r} in .chalice/config.json (have: {', '.join(stages)}).")
    return dict(stages[stage])


def stage_env(config: Mapping[str, Any], stage: str) -> dict[str, str]:
    """The environment every function of the stage gets (global, then stage values)."""
    env = dict(config.get("environment_variables", {}))
    env.update(stage_config(config, stage).get("environment_variables", {}))
    return env


def function_setting(config: Mapping[str, Any], stage: str, function: str, key: str) -> Any:
    """A per-function setting with Chalice's lookup order: function, stage, global."""
    st = stage_config(config, stage)
    for scope in (st.get("lambda_functions", {}).get(function, {}), st, config):
        if key in scope:
            return scope[key]
    return None


def write_json_if_changed(path: Path, doc: Any) -> bool:
    text = json.dumps(doc, indent=2) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def set_stage_env(root: Path, stage: str, values: Mapping[str, str | None]) -> list[str]:
    """Set (or, with None, remove) stage environment variables; returns the names changed."""
    path = root / ".chalice" / "config.json"
    config = json.loads(path.read_text())
    env = config["stages"][stage].setdefault("environment_variables", {})
    changed = []
    for key, value in values.items():
        if value is None:
            if key in env:
                del env[key]
                changed.append(key)
        elif env.get(key) != value:
            env[key] = value
            changed.append(key)
    if changed:
        write_json_if_changed(path, config)
    return changed
