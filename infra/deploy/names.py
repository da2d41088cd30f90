"""Every name a stage uses, derived from the app name and the stage (as infra/template.yaml does)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from infra.deploy import ROOT, DeployError
from infra.deploy.chalice_config import load_chalice_config


@dataclasses.dataclass(frozen=True)
class Names:
    """Every name a stage uses. infra/template.yaml derives the same ones from AppName+Stage."""

    app: str
    stage: str

    @property
    def stack(self) -> str:
        return f"{self.app}-{self.stage}-infra"

    @property
    def table(self) -> str:
        return f"{self.app}-{self.stage}"

    @property
    def mail_queue(self) -> str:
        return f"{self.app}-{self.stage}-mail"

    @property
    def mail_dlq(self) -> str:
        return f"{self.app}-{self.stage}-mail-dlq"

    @property
    def configuration_set(self) -> str:
        return f"{self.app}-{self.stage}"

    @property
    def token_secret_param(self) -> str:
        return f"/{self.app}/{self.stage}/token-secret"

    @property
    def function_prefix(self) -> str:
        return f"{self.app}-{self.stage}-"


def app_name(root: Path = ROOT) -> str:
    return str(load_chalice_config(root).get("app_name", "clicktochat"))


def names(stage: str, root: Path = ROOT) -> Names:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,15}", stage):
        raise DeployError(f"Stage {stage!r}: 1-16 of a-z 0-9 -, starting with a letter.")
    return Names(app_name(root), stage)
