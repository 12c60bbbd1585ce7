"""Usage metering of background work (issue 18): chat generations run by jobs (here an insight run) are
metered for their tenant with key_id "" per model, next to the requests' own usage."""

from __future__ import annotations

import httpx
import pytest
import telnyx

from tests.conftest import LiveServer
from tests.test_insights_e2e import wait_run

TENANT = "ops-background"


def _chat_usage(server: LiveServer) -> dict[tuple[str, str], float]:
    rows = server.container.usage.report(TENANT, by="key")
    return {(r["key_id"], r["metric"]): r["quantity"] for r in rows if str(r["metric"]).startswith("chat_")}


@pytest.mark.slow
def test_insight_run_moves_the_tenants_chat_token_usage(server: LiveServer) -> None:
    _, key = server.container.keys.create(TENANT)
    client = telnyx.Telnyx(api_key=key, base_url=server.v2, _strict_response_validation=True, max_retries=0)
    template = client.ai.conversations.insights.create(name="issue", instructions="What is the issue?").data
    group = client.ai.conversations.insight_groups.insight_groups(name="metered").data
    client.ai.conversations.insight_groups.insights.assign(template.id, group_id=group.id)
    conv = client.ai.conversations.create()
    client.ai.conversations.add_message(conv.id, role="user", content="My parcel is late again.")
    assert _chat_usage(server) == {}

    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {key}"}) as http:
        started = http.post(
            f"/ai/conversations/{conv.id}/conversations-insights", json={"insight_group_id": group.id}
        )
    assert started.status_code == 200, started.text
    runs, _ = wait_run(client, conv.id, 1)
    assert runs[0].status == "completed", runs[0].model_dump()

    usage = _chat_usage(server)
    assert set(usage) == {("", "chat_prompt_tokens"), ("", "chat_completion_tokens")}  # the job: key ""
    assert usage[("", "chat_prompt_tokens")] > 0 and usage[("", "chat_completion_tokens")] > 0
    models = {
        r["model"]
        for r in server.container.usage.report(TENANT, by="model")
        if r["metric"] == "chat_prompt_tokens"
    }
    assert len(models) == 1 and all(models)  # per model
