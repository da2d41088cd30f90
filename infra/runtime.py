"""The AWS Lambda runtime we deploy to, stated once.

Read by the Makefile (which Python builds the venv), ``infra/deploy/packaging.py`` (which runtime a
deploy may use, and what the package must carry) and ``tests/test_packaged.py`` (the clean
venv that plays the runtime). Change the runtime here and everything follows.

Sources, checked on 2026-12-07:

* Runtimes and their dates: AWS Lambda Developer Guide, "Building Lambda functions with
  Python", runtime table (https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html).
  python3.10 and python3.11 run on Amazon Linux 2: deprecated 2026-06-30, function creation
  blocked from 2026-07-31, updates blocked from 2026-08-31.
* The runtime-included SDK: the same page no longer lists versions ("depends on the runtime
  version and your AWS Region"; it gives a function to print them), and they lag PyPI by
  months (boto/botocore#3082: a function that leaves the SDK to the runtime breaks when its
  code needs something newer). So the package ships its own pinned botocore
  (``requirements.txt``) and uses nothing of the runtime's SDK; :data:`RUNTIME_SDK` is the
  version the packaged test installs *beside* the package to prove that ours is the one
  imported. It is an assumption about an older runtime SDK, not a reading from an account.
"""

from __future__ import annotations

import datetime as dt

#: The one Python version of the project (the Makefile reads this line; keep its shape).
PYTHON_VERSION = "3.13"
RUNTIME = f"python{PYTHON_VERSION}"
#: Amazon Linux 2023 runtimes, on /var/lang: no OS time-zone database is relied on
#: (``tzdata`` ships in the package instead).

#: runtime -> (deprecation, function creation blocked, function update blocked)
SCHEDULE: dict[str, tuple[dt.date, dt.date, dt.date]] = {
    "python3.13": (dt.date(2029, 6, 30), dt.date(2029, 7, 31), dt.date(2029, 8, 31)),
    "python3.12": (dt.date(2028, 10, 31), dt.date(2028, 11, 30), dt.date(2029, 1, 10)),
    "python3.11": (dt.date(2026, 6, 30), dt.date(2026, 7, 31), dt.date(2026, 8, 31)),
    "python3.10": (dt.date(2026, 6, 30), dt.date(2026, 7, 31), dt.date(2026, 8, 31)),
    "python3.9": (dt.date(2025, 12, 15), dt.date(2026, 2, 3), dt.date(2026, 3, 9)),
}
SCHEDULE_CHECKED = dt.date(2026, 12, 7)

#: What the runtime itself puts on ``sys.path`` after the function's own ``/var/task``
#: (the SDK and its dependencies), at an assumed version older than ours (module docstring).
RUNTIME_SDK: dict[str, str] = {
    "boto3": "1.38.36",
    "botocore": "1.38.36",
    "s3transfer": "0.13.0",
    "jmespath": "1.0.1",
    "python-dateutil": "2.9.0.post0",
    "six": "1.17.0",
    "urllib3": "1.26.20",
}


class RuntimeRefused(RuntimeError):
    """The runtime cannot be deployed to; the message names the date and what to do."""


def check_deployable(runtime: str, today: dt.date | None = None) -> None:
    """Refuse a runtime AWS has deprecated (or that we do not know), naming the date."""
    today = today or dt.date.today()
    if runtime not in SCHEDULE:
        raise RuntimeRefused(f"{runtime} is not a Lambda Python runtime we know "
                             f"(known: {', '.join(SCHEDULE)}); use {RUNTIME}.")
    deprecated, create_blocked, update_blocked = SCHEDULE[runtime]
    if today >= deprecated:
        raise RuntimeRefused(
            f"AWS deprecated the {runtime} Lambda runtime on {deprecated:%Y-%m-%d} (creating "
            f"functions blocked from {create_blocked:%Y-%m-%d}, updating them from "
            f"{update_blocked:%Y-%m-%d}). Deploy with Python {PYTHON_VERSION}: make deploy "
            f"builds its venv from it (infra/find-python).")
