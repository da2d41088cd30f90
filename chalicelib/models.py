"""The store under its old name, for the tests, bench and infra that import it.

The home of the data model is ``chalicelib.store`` (keys, models, requests, access
patterns); ``chalicelib`` itself imports only that. This name stays so that the many
``from chalicelib.models import ...`` outside the Lambda code need not change at once.
"""

from chalicelib.store import *  # noqa: F403
from chalicelib.store import __all__  # noqa: F401
