"""Which hosts and addresses the server may connect to on a caller's behalf (the SSRF policy).

Hosts are canonicalised first, the way resolvers read them: IPv4 in any `inet_aton` form (`2130706433`,
`0x7f000001`, `017700000001`, `127.1`, a trailing dot) becomes its dotted form, IPv6 its compressed form,
names are lower-cased IDNA without the trailing dot. An address is public only when it is globally routable;
the IPv4 inside IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 addresses is judged as IPv4. The
operator's allow-list (host names, IPs or CIDRs) admits the rest.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from inferline.errors import BadRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_NUMERIC = re.compile(r"[0-9]+|0x[0-9a-f]*")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_COMPATIBLE = ipaddress.IPv6Network("::/96")


class UnsafeUrl(BadRequest):
    """The URL is not an http(s) URL this server may connect to."""


def _ipv4_number(part: str) -> int:
    if not part:
        raise ValueError("empty IPv4 part")
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part, 10)


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 host in any `inet_aton` form, None for a name; ValueError for a malformed number.

    Like the WHATWG URL parser: a host whose last label is numeric is an IPv4 address or invalid.
    """
    parts = host.split(".")
    if not _NUMERIC.fullmatch(parts[-1]):
        return None
    if len(parts) > 4:
        raise ValueError("too many IPv4 parts")
    *head, last = [_ipv4_number(p) for p in parts]
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        raise ValueError("IPv4 part out of range")
    return ipaddress.IPv4Address(sum(n << (8 * (3 - i)) for i, n in enumerate(head)) + last)


def canonical_host(host: str) -> str:
    """The host as resolvers read it (see the module docstring); ValueError when it is not a valid host."""
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        if "%" in host:
            raise ValueError("IPv6 zone identifiers are not accepted")
        return str(ipaddress.IPv6Address(host))
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")  # also folds full-width digits and dots
        except UnicodeError as exc:
            raise ValueError(f"not a valid host name: {exc}") from None
    host = host.removesuffix(".")
    v4 = parse_ipv4(host) if host else None
    if v4 is not None:
        return str(v4)
    if not _HOSTNAME.fullmatch(host) or any(len(label) > 63 for label in host.split(".")):
        raise ValueError("not a valid host name")
    return host


def ip_literal(host: str) -> Address | None:
    """The address of a canonical host that is an IP literal, else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: Address) -> bool:
    """Whether `address` is globally routable unicast (the IPv4 embedded in IPv6 is judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address in _TEREDO or address in _NAT64_LOCAL or address.is_site_local:
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
    )


@dataclass(frozen=True)
class AllowList:
    """Host names and networks an operator lets the server reach although they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> AllowList:
        """`"127.0.0.1,10.0.0.0/8,internal.example"`; ValueError names an entry that is none of those."""
        hosts: set[str] = set()
        networks: list[Network] = []
        for item in spec.split(",") if isinstance(spec, str) else spec:
            item = item.strip()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
                continue
            except ValueError:
                pass
            try:
                host = canonical_host(item)
            except ValueError:
                raise ValueError(f"{item!r} is not a host name, IP address or CIDR") from None
            literal = ip_literal(host)
            if literal is None:
                hosts.add(host)
            else:
                networks.append(ipaddress.ip_network(literal))
        return cls(frozenset(hosts), tuple(networks))

    def permits(self, host: str, address: Address) -> bool:
        """Whether the canonical `host` resolved to `address` may be reached."""
        if host in self.hosts:
            return True
        candidates: list[Address] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(a in net for a in candidates for net in self.networks)


@dataclass(frozen=True)
class Target:
    """A parsed http(s) URL: the canonical host and the port to connect to."""

    parts: SplitResult
    host: str
    port: int

    @property
    def host_header(self) -> str:
        """`Host` value: the canonical host, bracketed when IPv6, with the URL's explicit port."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        return f"{name}:{self.parts.port}" if self.parts.port is not None else name


class Policy:
    """The checks every outgoing request passes; `setting` names the allow-list in refusals."""

    def __init__(self, allow: AllowList, setting: str) -> None:
        self.allow = allow
        self.setting = setting

    def target(self, url: str, pointer: str) -> Target:
        """Parse an absolute http(s) URL and canonicalise its host (UnsafeUrl when it is not one)."""
        try:
            parts = urlsplit(url)
            port = parts.port
            host = canonical_host(parts.hostname or "")
        except ValueError:
            raise UnsafeUrl(f"{url!r} is not a valid http(s) URL.", pointer=pointer) from None
        if parts.scheme not in ("http", "https"):
            raise UnsafeUrl(f"{url!r} must be an absolute http(s) URL.", pointer=pointer)
        return Target(parts, host, port or (443 if parts.scheme == "https" else 80))

    def check(self, host: str, addresses: Iterable[Address], pointer: str) -> None:
        """Refuse unless every address `host` resolved to is public or allow-listed."""
        for address in addresses:
            if not (is_public(address) or self.allow.permits(host, address)):
                raise UnsafeUrl(
                    f"The host {host!r} is {address}, a private, loopback or reserved address, which this "
                    f"server does not connect to (an operator can allow it with {self.setting}).",
                    pointer=pointer,
                )

    def check_static(self, url: str, pointer: str) -> Target:
        """The checks that need no DNS (when a URL is saved): scheme, host syntax, IP literals, localhost."""
        target = self.target(url, pointer)
        literal = ip_literal(target.host)
        if literal is not None:
            self.check(target.host, [literal], pointer)
        elif target.host == "localhost" or target.host.endswith(".localhost"):
            loopback = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
            self.check(target.host, loopback, pointer)
        return target
