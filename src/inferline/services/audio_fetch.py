"""Fetch a remote file without letting a caller reach private networks (SSRF-safe).

Every hop (including redirects) is resolved first; all its addresses must be public unless the host or the
address is on the operator's allow-list. The connection then goes to the checked address (Host header and
TLS SNI keep the name), so a DNS answer cannot change between the check and the connect.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

import httpx

from inferline.errors import BadRequest, PayloadTooLarge

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SafeFetcher:
    """GETs http(s) URLs whose every address is public (or allow-listed), up to `max_bytes`."""

    def __init__(
        self,
        allow: Iterable[str] = (),
        *,
        max_bytes: int = 100 * 1024 * 1024,
        timeout: float = 30.0,
        max_redirects: int = 5,
    ) -> None:
        self.allow_hosts: set[str] = set()
        self.allow_networks: list[Network] = []
        for entry in allow:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                self.allow_networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.allow_hosts.add(entry)
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects

    def _allowed(self, host: str, address: Address) -> bool:
        if host in self.allow_hosts or any(address in net for net in self.allow_networks):
            return True
        return address.is_global

    def _resolve(self, host: str, port: int, pointer: str) -> str:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise BadRequest(f"The host {host!r} could not be resolved.", pointer=pointer) from exc
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        if not addresses or not all(self._allowed(host, a) for a in addresses):
            raise BadRequest(
                f"The host {host!r} resolves to a private, loopback or reserved address, which this server "
                "does not fetch (operators can allow it with INFERLINE_FETCH_ALLOW_HOSTS).",
                pointer=pointer,
            )
        return str(addresses[0])

    def fetch(self, url: str, *, pointer: str = "/file_url") -> tuple[bytes, str]:
        """The body and the final URL. Bad scheme, refused host, HTTP error or oversize body is a 4xx."""
        for _ in range(self.max_redirects + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise BadRequest("Only absolute http(s) URLs can be fetched.", pointer=pointer)
            host = parts.hostname.lower()
            port = parts.port or (443 if parts.scheme == "https" else 80)
            address = self._resolve(host, port, pointer)
            literal = f"[{address}]" if ":" in address else address
            target = parts._replace(netloc=f"{literal}:{port}").geturl()
            headers = {"Host": parts.netloc.rsplit("@", 1)[-1]}
            extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
            try:
                with (
                    httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False) as client,
                    client.stream("GET", target, headers=headers, extensions=extensions) as response,
                ):
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        continue
                    if response.status_code >= 400:
                        raise BadRequest(
                            f"Fetching the URL failed with HTTP {response.status_code}.", pointer=pointer
                        )
                    return self._read(response, pointer), url
            except httpx.HTTPError as exc:
                raise BadRequest(f"Fetching the URL failed: {type(exc).__name__}.", pointer=pointer) from exc
        raise BadRequest("Too many redirects.", pointer=pointer)

    def _read(self, response: httpx.Response, pointer: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadTooLarge(f"The file is larger than {self.max_bytes} bytes.", pointer=pointer)
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                raise PayloadTooLarge(f"The file is larger than {self.max_bytes} bytes.", pointer=pointer)
        return bytes(body)
