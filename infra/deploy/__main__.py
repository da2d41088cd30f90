"""``python -m infra.deploy``: the command line (:mod:`infra.deploy.cli`)."""

import sys

from infra.deploy.cli import main

sys.exit(main())
