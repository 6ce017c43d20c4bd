"""The private-cluster fixture really stops and restarts its server."""

from __future__ import annotations

import asyncpg
import pytest

from tests.fakes.pg_cluster import PgCluster

pytestmark = pytest.mark.fault


async def test_the_private_cluster_goes_down_and_comes_back(pg_cluster: PgCluster) -> None:
    dsn = pg_cluster.url.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE t (x int)")
    await conn.execute("INSERT INTO t VALUES (1)")
    pg_cluster.stop()
    with pytest.raises((asyncpg.exceptions.PostgresConnectionError, ConnectionError, OSError)):
        await conn.fetchval("SELECT x FROM t")
    pg_cluster.start()
    conn = await asyncpg.connect(dsn)
    assert await conn.fetchval("SELECT x FROM t") == 1
    await conn.close()
