"""Usage records of every transcription, the legacy STT batch reports (CSV by a job) and the usage report."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import telnyx

from inferline.areas.audio.reports.service import CSV_COLUMNS
from inferline.stores.audio_tables import SttReport
from tests import audio_samples as audio
from tests.conftest import LiveServer
from tests.test_foundation import assert_envelope

BATCH = "/legacy/reporting/batch_detail_records/speech_to_text"


@pytest.fixture(scope="module")
def reporter(server: LiveServer) -> Iterator[tuple[telnyx.Telnyx, httpx.Client]]:
    """A fresh tenant with two transcriptions (one stereo, per channel) on record."""
    _, key = server.container.keys.create("tenant-stt-reports")
    sdk = telnyx.Telnyx(api_key=key, base_url=server.v2, _strict_response_validation=True, max_retries=0)
    mono = audio.wav(audio.speech("Good morning."))
    stereo = audio.wav([audio.speech("Good morning."), audio.speech("Hello there.")])
    sdk.ai.audio.transcribe(model="distil-whisper/distil-large-v2", file=("a.wav", mono))
    sdk.ai.audio.transcribe(
        model="openai/whisper-tiny.en", file=("b.wav", stereo), model_config={"multichannel": True}
    )
    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {key}"}, timeout=60) as raw:
        yield sdk, raw


def wait_complete(sdk: telnyx.Telnyx, report_id: str) -> str:
    for _ in range(300):
        report = sdk.legacy.reporting.batch_detail_records.speech_to_text.retrieve(report_id).data
        assert report is not None
        if report.status != "PENDING":
            return report.status or ""
        time.sleep(0.1)
    raise AssertionError("report stayed PENDING")


def test_usage_report_counts_each_transcription(reporter: tuple[telnyx.Telnyx, httpx.Client]) -> None:
    sdk, _ = reporter
    now = datetime.now(UTC)
    data = sdk.legacy.reporting.usage_reports.retrieve_speech_to_text(
        start_date=now - timedelta(hours=1), end_date=now + timedelta(minutes=1)
    ).data
    assert data is not None
    total = data["total"]
    assert total["transcriptions"] == 2
    # Billed seconds count both channels of the stereo file.
    assert total["billed_seconds"] > total["audio_seconds"] > 1
    assert [m["model"] for m in data["by_model"]] == ["openai/whisper-tiny.en"]
    assert data["by_day"][0]["transcriptions"] == 2
    empty = sdk.legacy.reporting.usage_reports.retrieve_speech_to_text(
        start_date=now - timedelta(days=10), end_date=now - timedelta(days=9)
    ).data
    assert empty is not None and empty["total"]["transcriptions"] == 0


def test_batch_report_lifecycle(
    reporter: tuple[telnyx.Telnyx, httpx.Client], client_b: telnyx.Telnyx
) -> None:
    sdk, raw = reporter
    reports = sdk.legacy.reporting.batch_detail_records.speech_to_text
    now = datetime.now(UTC)
    created = reports.create(start_date=now - timedelta(days=1), end_date=now + timedelta(minutes=5)).data
    assert created is not None and created.id and created.record_type == "speech_to_text_report"
    assert created.status in ("PENDING", "COMPLETE")
    assert wait_complete(sdk, created.id) == "COMPLETE"

    report = reports.retrieve(created.id).data
    assert (
        report is not None
        and report.download_link
        and report.download_link.endswith(f"{created.id}/download")
    )
    download = raw.get(report.download_link)
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert tuple(csv.DictReader(io.StringIO(download.text)).fieldnames or ()) == CSV_COLUMNS
    assert len(rows) == 2
    assert {r["requested_model"] for r in rows} == {
        "distil-whisper/distil-large-v2",
        "openai/whisper-tiny.en",
    }
    assert {r["model"] for r in rows} == {"openai/whisper-tiny.en"} and {r["channels"] for r in rows} == {
        "1",
        "2",
    }
    stereo = next(r for r in rows if r["channels"] == "2")
    assert float(stereo["billed_seconds"]) == pytest.approx(2 * float(stereo["audio_seconds"]), abs=0.002)

    assert created.id in [r.id for r in reports.list().data or []]
    # Another tenant sees nothing of it.
    with pytest.raises(telnyx.NotFoundError):
        client_b.legacy.reporting.batch_detail_records.speech_to_text.retrieve(created.id)
    assert created.id not in [
        r.id for r in client_b.legacy.reporting.batch_detail_records.speech_to_text.list().data or []
    ]
    with pytest.raises(telnyx.NotFoundError):
        client_b.legacy.reporting.batch_detail_records.speech_to_text.delete(created.id)

    deleted = reports.delete(created.id).data
    assert deleted is not None and deleted.id == created.id
    with pytest.raises(telnyx.NotFoundError):
        reports.retrieve(created.id)
    assert raw.get(report.download_link).status_code == 404


def test_report_range_excludes_other_times(reporter: tuple[telnyx.Telnyx, httpx.Client]) -> None:
    sdk, raw = reporter
    reports = sdk.legacy.reporting.batch_detail_records.speech_to_text
    start = datetime(2026, 1, 31, tzinfo=UTC)
    created = reports.create(
        start_date=start, end_date=datetime(2026, 2, 28, tzinfo=UTC)
    ).data  # clamped month
    assert created is not None and wait_complete(sdk, created.id) == "COMPLETE"
    assert raw.get(f"{BATCH}/{created.id}/download").text.strip() == ",".join(CSV_COLUMNS)


def test_expired_report(reporter: tuple[telnyx.Telnyx, httpx.Client], server: LiveServer) -> None:
    sdk, raw = reporter
    now = datetime.now(UTC)
    created = sdk.legacy.reporting.batch_detail_records.speech_to_text.create(
        start_date=now - timedelta(hours=1), end_date=now
    ).data
    assert created is not None and wait_complete(sdk, created.id) == "COMPLETE"
    with server.container.db.session() as s:
        row = s.get(SttReport, created.id)
        assert row is not None
        row.expires_at = now - timedelta(seconds=1)
    report = sdk.legacy.reporting.batch_detail_records.speech_to_text.retrieve(created.id).data
    assert report is not None and report.status == "EXPIRED" and report.download_link is None
    assert_envelope(raw.get(f"{BATCH}/{created.id}/download"), 404)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-02-01T00:00:01Z"}, 400),  # over a month
        ({"start_date": "2026-03-01T00:00:00Z", "end_date": "2026-02-01T00:00:00Z"}, 400),  # backwards
        ({"start_date": "2026-01-01T00:00:00", "end_date": "2026-01-02T00:00:00Z"}, 422),  # no timezone
        ({"start_date": "yesterday", "end_date": "2026-01-02T00:00:00Z"}, 422),
        ({"start_date": "2026-01-01T00:00:00Z"}, 422),
        ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-01-02T00:00:00Z", "x": 1}, 422),
    ],
)
def test_bad_report_requests(http: httpx.Client, body: dict, status: int) -> None:
    assert_envelope(http.post(BATCH, json=body), status)


def test_unknown_report_and_bad_usage_range(http: httpx.Client) -> None:
    assert_envelope(http.get(f"{BATCH}/182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"), 404)
    assert_envelope(http.delete(f"{BATCH}/not-a-uuid"), 404)
    params = {"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}
    assert_envelope(http.get("/legacy/reporting/usage_reports/speech_to_text", params=params), 400)
