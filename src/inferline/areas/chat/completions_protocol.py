"""Wire model of OpenAI's legacy text completions (`POST /ai/openai/completions`, `/v1/completions`).

One prompt and one choice per request. Fields typed here but not served (`n` > 1, several prompts, `echo`,
`logprobs`, `best_of` > 1, `suffix`) are a 400 naming them (`unsupported`); unknown fields are a 422.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from inferline.errors import UnsupportedParameter


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = Field(default=16, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)  # llama.cpp takes a 64-bit seed
    n: int = Field(default=1, ge=1)
    stream: bool = False
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = None
    suffix: str | None = None
    user: str | None = None

    def unsupported(self) -> None:
        """A 400 naming the first field asking for what this server does not serve."""
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise UnsupportedParameter(
                "prompt takes one string (or a list of one string).", pointer="/prompt"
            )
        if self.n != 1:
            raise UnsupportedParameter("Only n=1 is served for completions.", pointer="/n")
        for name, served in (("echo", False), ("logprobs", None), ("best_of", None), ("suffix", None)):
            value = getattr(self, name)
            if value != served and not (name == "best_of" and value == 1):
                raise UnsupportedParameter(f"{name} is not supported for completions.", pointer=f"/{name}")

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def engine_body(self) -> dict[str, object]:
        """The llama.cpp completion request, always streamed with usage in the last chunk."""
        body: dict[str, object] = {
            k: v
            for k, v in self.model_dump(
                include={"max_tokens", "temperature", "top_p", "stop", "seed"}
            ).items()
            if v is not None
        }
        body.update(prompt=self.text(), stream=True, stream_options={"include_usage": True})
        return body
