"""From call recording to insights: the real-time factor of the whole chain, next to transcription alone.

A stereo call (the TWO_SPEAKERS script spoken by the Piper voice, each side on its own channel) is sent to
`POST /v2/ai/conversations/recordings` with an insight group of one grounded template (`evidence: true`); the
chain is timed from the request to the insight run's `completed` status (the moment its webhook is queued).
The baseline is the same file through `POST /v2/ai/audio/transcriptions` with `model_config[multichannel]`.
Figures are audio seconds per wall-clock second (higher is better). Under BENCH_SMOKE=1 only three turns.
"""

from __future__ import annotations

import time

import httpx

from bench.common import BENCH_KEY, Row, live_server, pick
from tests import speakers
from tests.audio_samples import wav

MODEL = "openai/whisper-tiny.en"


def run() -> list[Row]:
    lines = pick(speakers.TWO_SPEAKERS, speakers.TWO_SPEAKERS[:3])
    stereo = speakers.channels(lines, voices=("piper", "piper"))
    seconds = len(stereo[0]) / speakers.RATE
    data = wav(stereo, rate=speakers.RATE)
    files = {"file": ("call.wav", data, "audio/wav")}
    with (
        live_server() as (url, _),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {BENCH_KEY}"}, timeout=600) as http,
    ):
        config = {"model": MODEL, "model_config[multichannel]": "true"}
        http.post("/ai/audio/transcriptions", data=config, files=files).raise_for_status()  # loads whisper
        started = time.perf_counter()
        http.post("/ai/audio/transcriptions", data=config, files=files).raise_for_status()
        alone = time.perf_counter() - started

        template = http.post(
            "/ai/conversations/insights",
            json={"name": "issue", "instructions": "What is the customer's problem?", "evidence": True},
        ).json()["data"]
        group = http.post("/ai/conversations/insight-groups", json={"name": "calls"}).json()["data"]
        http.post(f"/ai/conversations/insight-groups/{group['id']}/insights/{template['id']}/assign")
        timings = []
        for _ in range(2):  # the first run loads the chat model
            started = time.perf_counter()
            answer = http.post(
                "/ai/conversations/recordings",
                data={"model": MODEL, "insight_group_id": group["id"]},
                files=files,
            ).raise_for_status()
            request_s = time.perf_counter() - started
            conv_id = answer.json()["data"]["conversation"]["id"]
            while True:
                runs = http.get(f"/ai/conversations/{conv_id}/conversations-insights").json()["data"]
                if runs and runs[0]["status"] in ("completed", "failed"):
                    break
                time.sleep(0.05)
            assert runs[0]["status"] == "completed", runs[0]
            timings.append((request_s, time.perf_counter() - started))
        request_s, chain_s = timings[-1]
        started = time.perf_counter()  # again, with the chat model loaded as in the chain
        http.post("/ai/audio/transcriptions", data=config, files=files).raise_for_status()
        alone_after = time.perf_counter() - started
    print(f"transcription alone: {seconds / alone:.1f}x realtime before the chat model loaded, "
          f"{seconds / alone_after:.1f}x after")  # fmt: skip
    alone = max(alone, alone_after)
    return [
        Row(f"Recording -> conversation (one request), {seconds:.0f} s stereo call", seconds / request_s,
            seconds / alone, "x realtime", f"transcription alone, multichannel ({MODEL})"),
        Row(f"Recording -> grounded insight run completed (webhook queued), {seconds:.0f} s call",
            seconds / chain_s, seconds / alone, "x realtime", "transcription alone"),
    ]  # fmt: skip


if __name__ == "__main__":
    for row in run():
        print(row)
