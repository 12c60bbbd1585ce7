"""Chat completion hardening: guided regex classes are ASCII (as in outlines/xgrammar/vLLM), numeric
parameters are range-checked (422 naming the field), an empty model is a 422 and an unknown model's 404 lists
the available ones. Live requests go through the openai SDK; bad input through raw HTTP."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from inferline.areas.chat.planning import ascii_classes
from tests.conftest import LiveServer

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
HELLO = [{"role": "user", "content": "Hello!"}]
# Characters \d, \w or \s match in Unicode mode but not in ASCII mode (U+1FBF8 is what the model produced).
UNICODE_ONLY = ["\U0001fbf8", "\u0660", "\uff10", "\u00e9", "\u00b2", "\u2003", "\u00a0", "\u0085", "\u1680"]
SAMPLE = [chr(c) for c in range(0x80)] + UNICODE_ONLY + ["\U0010ffff", "\u4e2d"]


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0, timeout=300)


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    (error,) = response.json()["errors"]
    return error


@pytest.mark.parametrize(
    ("pattern", "rewritten"),
    [
        (r"\d{3}-\d{4}", "[0-9]{3}-[0-9]{4}"),
        (r"\w+\s\S\D\W", r"[A-Za-z0-9_]+[\x09-\x0d\x20][^\x09-\x0d\x20][^0-9][^A-Za-z0-9_]"),
        (r"[\d-]+", "[0-9-]+"),
        (r"[^\d]", "[^0-9]"),
        (r"[\D]", r"[\x00-\x2f\x3a-\U0010ffff]"),
        (r"[]\d]", "[]0-9]"),  # a `]` first in a class is a literal, the class goes on
        (r"[^]\w]", "[^]A-Za-z0-9_]"),
        (r"\\d", r"\\d"),  # an escaped backslash, then the letter d
        (r"\\\d", r"\\[0-9]"),
        (r"\.\x41\u00e9\n", r"\.\x41\u00e9\n"),  # other escapes are kept as written
        (r"(a|b)*c?", r"(a|b)*c?"),
    ],
)
def test_ascii_classes_rewrites_class_escapes_only(pattern: str, rewritten: str) -> None:
    assert ascii_classes(pattern) == rewritten


# Every class escape, outside and inside brackets, plain and negated (the patterns hold no spaces).
ESCAPES = ["\\" + letter for letter in "dDwWsS"]
CLASS_PATTERNS = [*ESCAPES, *(f"[{e}]" for e in ESCAPES), *(f"[^{e}]" for e in ESCAPES)]
CLASS_PATTERNS += [r"[a\Wb]", r"[\s\d.]", r"[^\s\w]", r"[\d-]"]


@pytest.mark.parametrize("pattern", CLASS_PATTERNS)
def test_ascii_classes_match_exactly_what_re_ascii_matches(pattern: str) -> None:
    """Unicode-mode matching of the rewritten pattern is ASCII-mode matching of the original."""
    ascii_mode, rewritten = re.compile(pattern, re.ASCII), re.compile(ascii_classes(pattern))
    for char in SAMPLE:
        assert bool(rewritten.fullmatch(char)) == bool(ascii_mode.fullmatch(char)), (pattern, char)
    unicode_mode = re.compile(pattern)  # the sample tells the two modes apart
    assert any(bool(unicode_mode.fullmatch(c)) != bool(ascii_mode.fullmatch(c)) for c in SAMPLE)


def test_guided_regex_digits_are_ascii_digits(oai: openai.OpenAI) -> None:
    """`\\d` once let the grammar pick U+1FBF8 (SEGMENTED DIGIT EIGHT) for some seeds; now ASCII digits."""
    for seed in range(1, 7):
        result = oai.chat.completions.create(
            model=SMOL,
            messages=[{"role": "user", "content": "What is your phone number?"}],
            max_tokens=24,
            temperature=1.0,
            seed=seed,
            extra_body={"guided_regex": r"\d{3}-\d{3}-\d{4}"},
        )
        choice = result.choices[0]
        assert choice.finish_reason == "stop"
        assert re.fullmatch(r"[0-9]{3}-[0-9]{3}-[0-9]{4}", choice.message.content or ""), (seed, choice)


def test_guided_regex_word_and_space_classes_are_ascii(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model=SMOL,
        messages=[{"role": "user", "content": "Name a city and its country."}],
        max_tokens=24,
        temperature=1.0,
        seed=4,
        extra_body={"guided_regex": r"\w{2,8}\s[^\W\d]{2,8}"},
    )
    text = result.choices[0].message.content or ""
    assert re.fullmatch(r"[A-Za-z0-9_]{2,8}[ \t\n\r\f\v][A-Za-z_]{2,8}", text), text


@pytest.mark.parametrize(
    ("extra", "pointer"),
    [
        ({"n": 0}, "/n"),
        ({"n": -1}, "/n"),
        ({"n": 9}, "/n"),
        ({"max_tokens": -5}, "/max_tokens"),
        ({"max_completion_tokens": 0}, "/max_completion_tokens"),
        ({"max_completion_tokens": -1}, "/max_completion_tokens"),
        ({"best_of": 0}, "/best_of"),
        ({"use_beam_search": True, "best_of": 0}, "/best_of"),
        ({"best_of": 9}, "/best_of"),
        ({"temperature": -0.1}, "/temperature"),
        ({"top_p": 0}, "/top_p"),
        ({"top_p": 1.01}, "/top_p"),
        ({"min_p": -0.5}, "/min_p"),
        ({"frequency_penalty": 2.5}, "/frequency_penalty"),
        ({"presence_penalty": -3}, "/presence_penalty"),
        ({"logprobs": True, "top_logprobs": -1}, "/top_logprobs"),
        ({"model": ""}, "/model"),
    ],
)
def test_out_of_range_numbers_are_422_naming_the_field(http: httpx.Client, extra: dict, pointer: str) -> None:
    for path in ("/ai/chat/completions", "/ai/openai/chat/completions"):
        error = error_of(http.post(path, json={"messages": HELLO, "max_tokens": 2, **extra}), 422)
        assert error["code"] == "10004" and error["source"] == {"pointer": pointer}, error


@pytest.mark.parametrize(("name", "literal"), [("n", "Infinity"), ("length_penalty", "NaN")])
def test_non_finite_numbers_are_422_not_500(http: httpx.Client, name: str, literal: str) -> None:
    body = '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "use_beam_search": true, '
    body += f'"{name}": {literal}}}'
    response = http.post(
        "/ai/openai/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert error_of(response, 422)["source"] == {"pointer": f"/{name}"}


def test_range_edges_are_accepted(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model=SMOL,
        messages=HELLO,
        max_completion_tokens=1,
        n=1,
        top_p=1,
        temperature=0,
        extra_body={"min_p": 0},
    )
    assert len(result.choices) == 1 and result.usage and result.usage.completion_tokens == 1


def test_unknown_model_404_lists_the_available_models(http: httpx.Client) -> None:
    error = error_of(
        http.post("/ai/openai/chat/completions", json={"messages": HELLO, "model": "nope/x"}), 404
    )
    assert error["detail"].startswith("Model 'nope/x' is not available; available chat models: ")
    assert SMOL in error["detail"] and "No chat model is installed" not in error["detail"]
    assert error["source"] == {"pointer": "/model"}
