"""Randomized multi-tenant isolation across every stateful area.

Three tenants create resources (conversations with messages, insight templates, insight groups, speech-to-text
reports, S3 buckets and objects, bucket embedding tasks) in a random order and probe each other's with every
read, write and list the API has. No probe may see or change another tenant's resource: single reads and
writes are 404, lists never contain foreign ids, and the owner still finds the resource afterwards.

The seed is printed; rerun a failure with INFERLINE_TENANCY_SEED=<seed>.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
import httpx
import pytest
from botocore.client import BaseClient
from botocore.config import Config

from tests.conftest import LiveServer, s3_auth

SEED = int(os.environ.get("INFERLINE_TENANCY_SEED") or secrets.randbelow(2**31))
ROUNDS = 24
REPORTS = "/legacy/reporting/batch_detail_records/speech_to_text"


@dataclass
class Tenant:
    name: str
    http: httpx.Client
    s3: BaseClient
    owned: dict[str, set[str]] = field(default_factory=dict)  # kind -> ids (or bucket names)

    def own(self, kind: str, ident: str) -> None:
        self.owned.setdefault(kind, set()).add(ident)


def _tenant(server: LiveServer, name: str, key: str) -> Tenant:
    http = httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    s3 = boto3.client(
        "s3",
        endpoint_url=server.url + "/s3",
        **s3_auth(key),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    return Tenant(name, http, s3)


def ok(response: httpx.Response) -> dict:
    assert response.status_code < 300, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else {}


# ---- creators: each makes one resource for its tenant and returns (kind, id) ------------------------------


def make_conversation(t: Tenant, rng: random.Random) -> tuple[str, str]:
    conv = ok(
        t.http.post("/ai/conversations", json={"name": f"{t.name}-conv", "metadata": {"owner": t.name}})
    )
    ok(
        t.http.post(
            f"/ai/conversations/{conv['id']}/message", json={"role": "user", "content": f"from {t.name}"}
        )
    )
    return "conversation", conv["id"]


def make_insight(t: Tenant, rng: random.Random) -> tuple[str, str]:
    body = {"name": f"{t.name}-insight", "instructions": f"Summarise for {t.name}."}
    return "insight", ok(t.http.post("/ai/conversations/insights", json=body))["data"]["id"]


def make_group(t: Tenant, rng: random.Random) -> tuple[str, str]:
    group = ok(t.http.post("/ai/conversations/insight-groups", json={"name": f"{t.name}-group"}))["data"]
    mine = sorted(t.owned.get("insight", ()))
    if mine:
        insight = rng.choice(mine)
        ok(t.http.post(f"/ai/conversations/insight-groups/{group['id']}/insights/{insight}/assign"))
    return "group", group["id"]


def make_report(t: Tenant, rng: random.Random) -> tuple[str, str]:
    now = time.time()
    body = {
        "start_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
        "end_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }
    return "report", ok(t.http.post(REPORTS, json=body))["data"]["id"]


def make_bucket(t: Tenant, rng: random.Random) -> tuple[str, str]:
    # Names are drawn from a small pool so that tenants often pick the same name: namespaces must not mix.
    name = f"iso-{rng.randrange(4)}-{t.name}" if rng.random() < 0.5 else f"iso-shared-{rng.randrange(3)}"
    if name in t.owned.get("bucket", ()):
        return "bucket", name
    t.s3.create_bucket(Bucket=name)
    t.s3.put_object(Bucket=name, Key="secret.txt", Body=f"{t.name} private note about {name}".encode())
    return "bucket", name


def make_embedding(t: Tenant, rng: random.Random) -> tuple[str, str]:
    kind, bucket = make_bucket(t, rng)
    t.own(kind, bucket)
    task = ok(t.http.post("/ai/embeddings", json={"bucket_name": bucket}))["data"]
    return "task", task["task_id"]


CREATORS: list[Callable[[Tenant, random.Random], tuple[str, str]]] = [
    make_conversation,
    make_insight,
    make_group,
    make_report,
    make_bucket,
    make_embedding,
]


# ---- probes: what a foreign tenant tries on a resource -----------------------------------------------------


def probes(kind: str, ident: str) -> list[tuple[str, str, dict | None]]:
    """(method, path, json) calls that must all be 404 for anyone but the owner."""
    if kind == "conversation":
        base = f"/ai/conversations/{ident}"
        return [
            ("GET", base, None),
            ("PUT", base, {"metadata": {"stolen": "yes"}}),
            ("GET", f"{base}/messages", None),
            ("GET", f"{base}/conversations-insights", None),
            ("POST", f"{base}/message", {"role": "user", "content": "intrusion"}),
            ("DELETE", base, None),
        ]
    if kind == "insight":
        base = f"/ai/conversations/insights/{ident}"
        return [("GET", base, None), ("PUT", base, {"name": "stolen"}), ("DELETE", base, None)]
    if kind == "group":
        base = f"/ai/conversations/insight-groups/{ident}"
        return [("GET", base, None), ("PUT", base, {"name": "stolen"}), ("DELETE", base, None)]
    if kind == "report":
        return [("GET", f"{REPORTS}/{ident}", None), ("DELETE", f"{REPORTS}/{ident}", None)]
    if kind == "task":
        return [("GET", f"/ai/embeddings/{ident}", None)]
    raise AssertionError(kind)


def owner_read(kind: str, ident: str) -> str:
    return {
        "conversation": f"/ai/conversations/{ident}",
        "insight": f"/ai/conversations/insights/{ident}",
        "group": f"/ai/conversations/insight-groups/{ident}",
        "report": f"{REPORTS}/{ident}",
        "task": f"/ai/embeddings/{ident}",
    }[kind]


def listed_ids(t: Tenant) -> dict[str, set[str]]:
    """Every id each list endpoint shows this tenant (first page of 250)."""
    pages = {
        "conversation": ("/ai/conversations", None),
        "insight": ("/ai/conversations/insights", {"page[size]": 250}),
        "group": ("/ai/conversations/insight-groups", {"page[size]": 250}),
        "report": (REPORTS, None),
    }
    out: dict[str, set[str]] = {}
    for kind, (path, params) in pages.items():
        body = ok(t.http.get(path, params=params))
        out[kind] = {item["id"] for item in body.get("data") or []}
    out["task"] = {item["task_id"] for item in ok(t.http.get("/ai/embeddings"))["data"]}
    return out


def probe_bucket(prober: Tenant, owner: Tenant, name: str) -> None:
    """A foreign tenant never reads the owner's objects, even under the same bucket name."""
    if name in prober.owned.get("bucket", ()):
        # Same name in the prober's own namespace: it must hold only the prober's own object.
        body = prober.s3.get_object(Bucket=name, Key="secret.txt")["Body"].read().decode()
        assert body.startswith(prober.name), f"{prober.name} read {owner.name}'s object in bucket {name}"
    else:
        listing = prober.s3.list_buckets()["Buckets"]
        assert name not in [b["Name"] for b in listing]
        with pytest.raises(Exception) as info:
            prober.s3.get_object(Bucket=name, Key="secret.txt")
        assert "NoSuchBucket" in str(info.value) or "404" in str(info.value)
        search = prober.http.post(
            "/ai/embeddings/similarity-search", json={"bucket_name": name, "query": "note"}
        )
        assert search.status_code == 404, search.text
        assert prober.http.get(f"/ai/embeddings/buckets/{name}").status_code == 404


def test_randomized_tenants_never_see_each_other(server: LiveServer) -> None:
    print(f"INFERLINE_TENANCY_SEED={SEED}")
    rng = random.Random(SEED)
    _, key_c = server.container.keys.create(f"tenant-c-{SEED}", name="tenancy fuzz")
    tenants = [
        _tenant(server, "alpha", server.key_a),
        _tenant(server, "bravo", server.key_b),
        _tenant(server, "charlie", key_c),
    ]
    try:
        for _ in range(ROUNDS):
            owner = rng.choice(tenants)
            kind, ident = rng.choice(CREATORS)(owner, rng)
            owner.own(kind, ident)
            # Probe a random sample of everything owned so far, by every other tenant.
            everything = [(t, k, i) for t in tenants for k, ids in t.owned.items() for i in ids]
            for holder, k, i in rng.sample(everything, min(6, len(everything))):
                for prober in tenants:
                    if prober is holder:
                        continue
                    if k == "bucket":
                        probe_bucket(prober, holder, i)
                        continue
                    for method, path, body in probes(k, i):
                        response = prober.http.request(method, path, json=body)
                        assert response.status_code == 404, (
                            f"seed {SEED}: {prober.name} {method} {path} on {holder.name}'s {k} -> "
                            f"{response.status_code} {response.text[:200]}"
                        )
                    assert holder.http.get(owner_read(k, i)).status_code == 200, f"{holder.name} lost {k} {i}"

        # Lists: each tenant's lists hold none of the others' ids.
        for t in tenants:
            seen = listed_ids(t)
            for other in tenants:
                if other is t:
                    continue
                for kind, ids in other.owned.items():
                    leaked = seen.get(kind, set()) & ids
                    assert not leaked, f"seed {SEED}: {t.name} lists {other.name}'s {kind}: {leaked}"
            embedded = set(ok(t.http.get("/ai/embeddings/buckets"))["data"]["buckets"])
            foreign = {n for n in embedded if n.startswith("iso-")} - t.owned.get("bucket", set())
            assert not foreign, f"seed {SEED}: {t.name} lists embedded buckets it does not own: {foreign}"
        conv = next((i for t in tenants for i in t.owned.get("conversation", ()) if t.name == "alpha"), None)
        if conv is not None:  # the probes' writes left the owner's data as it was
            assert ok(tenants[0].http.get(f"/ai/conversations/{conv}"))["data"]["metadata"] == {
                "owner": "alpha"
            }
    finally:
        for t in tenants:
            t.http.close()
