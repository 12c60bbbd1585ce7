"""The one HTTP client for URLs that callers choose (file_url, URL crawl, webhooks), safe against SSRF.

Each hop (every redirect too) is parsed, its host canonicalised (`inferline.net.policy`) and resolved ONCE,
and every address checked; the connection then goes to the checked address while the `Host` header and TLS SNI
carry the name, so a DNS answer cannot change between the check and the connect (no DNS rebinding). Proxies
from the environment are ignored; bodies are capped at `max_bytes` and each request at a total deadline.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from inferline.errors import BadRequest, PayloadTooLarge
from inferline.net.policy import Address, AllowList, Policy, Target, ip_literal

Resolver = Callable[[str, int], Sequence[str]]


class FetchFailed(BadRequest):
    """The remote server could not be reached or answered with an error."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `getaddrinfo` gives for `host`."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@dataclass(frozen=True)
class Response:
    status_code: int
    content: bytes
    url: str


class SafeHttpClient:
    """GET and POST to public (or allow-listed) http(s) targets only, each host resolved once."""

    def __init__(
        self,
        allow: AllowList = AllowList(),
        *,
        setting: str = "INFERLINE_FETCH_ALLOW_HOSTS",
        max_bytes: int = 100 * 1024 * 1024,
        timeout: float = 30.0,
        total_timeout: float | None = None,
        max_redirects: int = 5,
        resolver: Resolver = system_resolver,
    ) -> None:
        """`timeout` bounds each connect, read and write; `total_timeout` (default: 10 times `timeout`) one
        whole request with its redirects and body."""
        self.policy = Policy(allow, setting)
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.total_timeout = total_timeout if total_timeout is not None else 10 * timeout
        self.max_redirects = max_redirects
        self.resolver = resolver

    def resolve(self, url: str, pointer: str) -> tuple[Target, Address]:
        """Parse `url`, resolve its host once and check every address; the target and the address to use."""
        target = self.policy.target(url, pointer)
        literal = ip_literal(target.host)
        if literal is not None:
            addresses: list[Address] = [literal]
        else:
            try:
                answers = self.resolver(target.host, target.port)
                addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
            except (OSError, UnicodeError, ValueError) as exc:
                raise FetchFailed(
                    f"The host {target.host!r} could not be resolved: {exc}", pointer=pointer
                ) from None
            if not addresses:
                raise FetchFailed(f"The host {target.host!r} has no address.", pointer=pointer)
        self.policy.check(target.host, addresses, pointer)
        return target, addresses[0]

    def check_url(self, url: str, *, pointer: str) -> None:
        """Raise `UnsafeUrl` (or `FetchFailed` when the host does not resolve) without connecting."""
        self.resolve(url, pointer)

    def get(self, url: str, *, pointer: str) -> tuple[bytes, str]:
        """The body and the final URL after redirects; HTTP >= 400 is `FetchFailed`, too big is a 413."""
        response = self.request("GET", url, pointer=pointer, follow_redirects=True)
        if response.status_code >= 400:
            raise FetchFailed(f"Fetching the URL failed with HTTP {response.status_code}.", pointer=pointer)
        return response.content, response.url

    def post(self, url: str, content: bytes, *, headers: dict[str, str], pointer: str) -> int:
        """POST `content` (no redirects followed, the answer's body not read); the status code."""
        return self.request(
            "POST", url, content=content, headers=headers, pointer=pointer, read=False
        ).status_code

    def request(
        self,
        method: str,
        url: str,
        *,
        pointer: str,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = False,
        read: bool = True,
    ) -> Response:
        """One request, following redirects (each hop checked) if asked; transport errors: `FetchFailed`."""
        deadline = time.monotonic() + self.total_timeout
        for _ in range(self.max_redirects + 1):
            target, address = self.resolve(url, pointer)
            literal = f"[{address}]" if address.version == 6 else str(address)
            connect_url = target.parts._replace(netloc=f"{literal}:{target.port}", fragment="").geturl()
            extensions = {"sni_hostname": target.host} if target.parts.scheme == "https" else {}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchFailed(f"The request took longer than {self.total_timeout:g} s.", pointer=pointer)
            timeout = httpx.Timeout(min(self.timeout, remaining))
            try:
                with (
                    httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
                    client.stream(
                        method,
                        connect_url,
                        content=content,
                        headers={**(headers or {}), "Host": target.host_header},
                        extensions=extensions,
                    ) as response,
                ):
                    if follow_redirects and response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        continue
                    body = self._read(response, deadline, pointer) if read else b""
                    return Response(response.status_code, body, url)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise FetchFailed(
                    f"The request failed: {type(exc).__name__}: {exc}", pointer=pointer
                ) from None
        raise FetchFailed(f"More than {self.max_redirects} redirects.", pointer=pointer)

    def _read(self, response: httpx.Response, deadline: float, pointer: str) -> bytes:
        too_big = f"The response is larger than {self.max_bytes} bytes."
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadTooLarge(too_big, pointer=pointer)
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                raise PayloadTooLarge(too_big, pointer=pointer)
            if time.monotonic() > deadline:
                raise FetchFailed(f"The request took longer than {self.total_timeout:g} s.", pointer=pointer)
        return bytes(body)
