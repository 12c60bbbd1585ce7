"""Storage quota under concurrent writes (issue 18): PUTs racing each other cannot together take the tenant
past its `storage_bytes` quota (each write's growth is reserved with its check), and the reservations are
released once the writes are done."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import httpx
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import LiveServer, s3_auth

TENANT = "ops-quota-race"
SIZE = 300_000
QUOTA = 3 * SIZE + SIZE // 2  # room for three objects, not four
WRITERS = 8


def _client(server: LiveServer, key: str) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **s3_auth(key),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=WRITERS),
    )


def _put(s3: BaseClient, key: str) -> str:
    try:
        s3.put_object(Bucket="race", Key=key, Body=b"r" * SIZE)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def test_concurrent_puts_stay_within_the_quota(server: LiveServer) -> None:
    _, key = server.container.keys.create(TENANT)
    _, admin_key = server.container.keys.create("ops-quota-race-admin", scope="admin")
    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {admin_key}"}) as admin:
        limit = admin.put(f"/admin/tenants/{TENANT}/limits", json={"storage_bytes": QUOTA})
    assert limit.status_code == 200, limit.text
    clients = [_client(server, key) for _ in range(WRITERS)]
    clients[0].create_bucket(Bucket="race")
    start = threading.Barrier(WRITERS)

    def write(n: int) -> str:
        start.wait()
        return _put(clients[n], f"object-{n}")

    with ThreadPoolExecutor(WRITERS) as pool:
        outcomes = list(pool.map(write, range(WRITERS)))
    stored = [o["Size"] for o in clients[0].list_objects_v2(Bucket="race").get("Contents", [])]
    assert sum(stored) <= QUOTA, outcomes
    assert 1 <= outcomes.count("ok") <= 3 and set(outcomes) <= {"ok", "QuotaExceeded"}, outcomes

    # Nothing stays reserved: one at a time, writes fill the quota up to the third object exactly.
    more = [_put(clients[0], f"more-{n}") for n in range(4 - len(stored))]
    assert more == ["ok"] * (3 - len(stored)) + ["QuotaExceeded"], more
