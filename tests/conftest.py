from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from servers import ServerProcess, free_port

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def _example_shop_database(tmp_path_factory: pytest.TempPathFactory) -> None:
    """examples/shop.py keeps its orders in $SHOP_DB: never in the source tree."""
    import os

    os.environ["SHOP_DB"] = str(tmp_path_factory.mktemp("shop") / "shop.db")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated, for the whole test session."""
    from pg import create_database, drop_database, in_thread

    from exosms.store.migrate import upgrade

    url = create_database()
    in_thread(upgrade, url)
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real `exosms serve` with the test router, on its own SQLite file, for one module."""
    workdir = tmp_path_factory.mktemp("server")
    proc = ServerProcess(
        workdir=workdir,
        port=free_port(),
        database_url=f"sqlite:///{workdir / 'exosms.db'}",
        args=["--app", "exosms_test_apps:router"],
        env={"EXOSMS_REPLY_DEADLINE": "0.5"},
    ).start()
    yield proc
    proc.stop()
