"""The fault suite: real faults under load, each test bounded in time and count.

A private PostgreSQL cluster per module (never the shared server's data), real `exosms
serve` processes (tests/support/faults_support.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from private_pg import PrivateCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    from exosms.store.migrate import upgrade

    made = PrivateCluster().start()
    upgrade(made.url)
    yield made
    made.stop()
