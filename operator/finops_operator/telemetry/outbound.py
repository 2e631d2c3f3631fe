"""POST to a URL a tenant chose, without becoming a tenant's proxy into the cluster.

A FinOpsPolicy author picks the alert webhook URL, so the operator's pod would otherwise send
requests to anything it can reach: cloud metadata endpoints, in-cluster services, the API server on
loopback. The guard: https only; the host is resolved once, *every* address it resolves to must be
public (so a DNS name pointing at a private range is refused too), and the connection goes to the
checked address (a second lookup could answer differently); redirects are never followed; the whole
exchange has a deadline and the response body read is capped. The operator setting
``alert_allow_private_urls`` lifts the https and private-address rules (a receiver inside the cluster
or on the machine); metadata endpoints stay refused either way.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.0.23",  # Tencent Cloud
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_RESPONSE_BYTES = 64 * 1024
"""A receiver's answer is never needed beyond its status; read at most this much of it."""


class UnsafeURLError(OSError):
    """The URL was refused before any request was sent. An OSError, so callers that already handle
    an unreachable receiver report it the same way."""


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why the operator must not send a request to ``address``, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
        )
        if embedded is not None:
            return refusal(embedded, allow_private=allow_private)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_multicast or address.is_unspecified:  # never a receiver; multicast counts as global
        return _kind(address)
    if address.is_global or allow_private:
        return None
    return _kind(address)


def _kind(address: IPAddress) -> str:
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    return "not a public address"


@dataclass(frozen=True)
class Target:
    """A URL that passed the guard, with the address the request must go to."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def system_resolver(host: str, port: int) -> Sequence[str]:
    """Every address ``host`` resolves to (the scope of IPv6 link-local addresses dropped)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UnsafeURLError(f"cannot resolve {host}: {error}") from None
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


def check_url(url: str, *, allow_private: bool, resolve: Resolver = system_resolver) -> Target:
    """The target to connect to, or UnsafeURLError saying why the URL is refused."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if allow_private else ("https",)
    if scheme not in allowed:
        raise UnsafeURLError(f"alert URL scheme must be {' or '.join(allowed)}, not {scheme or 'empty'!r}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as error:
        raise UnsafeURLError(f"alert URL has an invalid port: {error}") from None
    host = parts.hostname
    if not host:
        raise UnsafeURLError("alert URL has no host")
    addresses = [ipaddress.ip_address(a) for a in resolve(host, port)]
    if not addresses:
        raise UnsafeURLError(f"{host} resolves to no address")
    for address in addresses:
        why = refusal(address, allow_private=allow_private)
        if why is not None:
            raise UnsafeURLError(f"alert URL host {host} resolves to {address}, {why}: refused")
    path = parts.path or "/"
    return Target(scheme, host, port, f"{path}?{parts.query}" if parts.query else path, str(addresses[0]))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address; the Host header still names the URL's host."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As :class:`_PinnedHTTPConnection`, with the certificate verified for the URL's host (SNI)."""

    def __init__(self, target: Target, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def post_json(
    url: str,
    body: bytes,
    *,
    allow_private: bool,
    timeout: float = 10,
    resolve: Resolver = system_resolver,
) -> int:
    """POST ``body`` to ``url`` through the guard; returns the status. Raises OSError (UnsafeURLError
    when refused) on refusal, failure, a redirect (never followed) or an error status. The whole
    exchange ends after ``timeout`` seconds, however slowly the receiver trickles its answer."""
    target = check_url(url, allow_private=allow_private, resolve=resolve)
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = kind(target, timeout)
    deadline = threading.Timer(timeout, _cut, args=(connection,))
    deadline.start()
    try:
        connection.request("POST", target.path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
    except (OSError, http.client.HTTPException) as error:
        raise OSError(f"alert POST to {target.host} failed: {error}") from None
    finally:
        deadline.cancel()
        connection.close()
    if 300 <= response.status < 400:
        raise OSError(f"alert receiver {target.host} answered a redirect ({response.status}): not followed")
    if response.status >= 400:
        raise OSError(f"alert receiver {target.host} answered {response.status} {response.reason}")
    return response.status


def _cut(connection: http.client.HTTPConnection) -> None:
    """Deadline reached: shut the socket down, which wakes the thread blocked reading it."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
