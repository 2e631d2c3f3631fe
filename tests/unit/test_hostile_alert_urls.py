"""The outbound guard for tenant-chosen alert URLs. Refusals are tested by address classification and
with a fake resolver: no traffic ever goes to a non-loopback address. The only requests sent go to
receivers this test starts on 127.0.0.1."""

from __future__ import annotations

import contextlib
import ipaddress
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from finops_operator.telemetry.alerts import Alert, post_alerts
from finops_operator.telemetry.outbound import (
    MAX_RESPONSE_BYTES,
    UnsafeURLError,
    check_url,
    post_json,
    refusal,
)


@pytest.mark.parametrize(
    ("address", "private_ok", "refused_as"),
    [
        pytest.param("8.8.8.8", False, None, id="public-v4"),
        pytest.param("2606:4700:4700::1111", False, None, id="public-v6"),
        pytest.param("127.0.0.1", False, "loopback", id="loopback-v4"),
        pytest.param("127.8.9.10", False, "loopback", id="loopback-v4-whole-8"),
        pytest.param("::1", False, "loopback", id="loopback-v6"),
        pytest.param("10.0.0.1", False, "private", id="rfc1918-10"),
        pytest.param("172.16.5.4", False, "private", id="rfc1918-172"),
        pytest.param("192.168.1.1", False, "private", id="rfc1918-192"),
        pytest.param("fd12:3456::1", False, "private", id="ula-v6"),
        pytest.param("169.254.1.1", False, "link-local", id="link-local-v4"),
        pytest.param("fe80::1", False, "link-local", id="link-local-v6"),
        pytest.param("100.64.0.1", False, "not a public", id="cgnat-shared"),
        pytest.param("0.0.0.0", False, "unspecified", id="unspecified-v4"),
        pytest.param("::", False, "unspecified", id="unspecified-v6"),
        pytest.param("224.0.0.1", False, "multicast", id="multicast"),
        pytest.param("169.254.169.254", False, "metadata", id="metadata-aws-gcp-azure"),
        pytest.param("169.254.170.2", False, "metadata", id="metadata-ecs"),
        pytest.param("100.100.100.200", False, "metadata", id="metadata-alibaba"),
        pytest.param("fd00:ec2::254", False, "metadata", id="metadata-aws-v6"),
        pytest.param("::ffff:127.0.0.1", False, "loopback", id="v4-mapped-loopback"),
        pytest.param("::ffff:169.254.169.254", False, "metadata", id="v4-mapped-metadata"),
        pytest.param("64:ff9b::a9fe:a9fe", False, "metadata", id="nat64-metadata"),
        pytest.param("64:ff9b::808:808", False, None, id="nat64-public"),
        # The operator setting lifts the private-address rule, never the metadata one.
        pytest.param("127.0.0.1", True, None, id="allowed-loopback"),
        pytest.param("10.96.0.10", True, None, id="allowed-cluster-service"),
        pytest.param("169.254.1.1", True, None, id="allowed-link-local"),
        pytest.param("169.254.169.254", True, "metadata", id="allowed-still-no-metadata"),
        pytest.param("::ffff:169.254.169.254", True, "metadata", id="allowed-still-no-mapped-metadata"),
        pytest.param("0.0.0.0", True, "unspecified", id="allowed-still-no-unspecified"),
    ],
)
def test_address_classification(address: str, private_ok: bool, refused_as: str | None) -> None:
    why = refusal(ipaddress.ip_address(address), allow_private=private_ok)
    if refused_as is None:
        assert why is None
    else:
        assert why is not None and refused_as in why


def _resolver(*answers: str) -> object:
    def resolve(host: str, port: int) -> Sequence[str]:
        return answers

    return resolve


@pytest.mark.parametrize(
    ("url", "answers", "private_ok", "refused_as"),
    [
        pytest.param("http://hooks.example.com/x", ("93.184.216.34",), False, "scheme", id="http-by-default"),
        pytest.param("ftp://hooks.example.com/x", ("93.184.216.34",), True, "scheme", id="ftp-never"),
        pytest.param("file:///etc/passwd", (), True, "scheme", id="file-never"),
        pytest.param("https:///nohost", (), False, "no host", id="no-host"),
        pytest.param("https://h.example.com:99999/", (), False, "port", id="bad-port"),
        pytest.param(
            "https://internal.example.com/", ("10.1.2.3",), False, "private", id="dns-name-to-private"
        ),
        pytest.param(
            "https://mixed.example.com/",
            ("93.184.216.34", "127.0.0.1"),
            False,
            "loopback",
            id="dns-any-answer-private-refuses",
        ),
        pytest.param(
            "https://metadata.google.internal/computeMetadata/v1/",
            ("169.254.169.254",),
            True,
            "metadata",
            id="dns-name-to-metadata-even-allowed",
        ),
        pytest.param("https://empty.example.com/", (), False, "no address", id="resolves-to-nothing"),
    ],
)
def test_urls_refused_before_any_request(
    url: str, answers: tuple[str, ...], private_ok: bool, refused_as: str
) -> None:
    with pytest.raises(UnsafeURLError, match=refused_as):
        check_url(url, allow_private=private_ok, resolve=_resolver(*answers))  # type: ignore[arg-type]


def test_the_checked_address_is_the_one_connected_to() -> None:
    target = check_url(
        "https://hooks.example.com:8443/a/b?c=d",
        allow_private=False,
        resolve=_resolver("93.184.216.34"),  # type: ignore[arg-type]
    )
    assert (target.host, target.port, target.path, target.address) == (
        "hooks.example.com",
        8443,
        "/a/b?c=d",
        "93.184.216.34",
    )


def test_real_resolution_of_localhost_is_refused_by_default() -> None:
    with pytest.raises(UnsafeURLError, match="loopback"):
        check_url("https://localhost/hook", allow_private=False)


class _Answers(BaseHTTPRequestHandler):
    status = 200
    headers_extra: dict[str, str] = {}
    body = b""
    trickle = False
    requests: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append(self.path)
        if self.trickle:  # a receiver that never finishes its status line
            with contextlib.suppress(OSError):  # the guard hangs up at its deadline
                for _ in range(200):
                    self.wfile.write(b"H")
                    self.wfile.flush()
                    time.sleep(0.05)
            return
        self.send_response(self.status)
        for key, value in self.headers_extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def _receiver(**behaviour: object) -> Iterator[str]:
    handler = type("Handler", (_Answers,), {**behaviour, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_loopback_receiver_refused_by_default_and_reached_when_allowed() -> None:
    alert = Alert("BudgetThresholdCrossed", "CRITICAL", "finops", "ns", "p", "over budget")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with _receiver() as url:
        with pytest.raises(UnsafeURLError):
            post_alerts(url, [alert], now)
        post_alerts(url, [alert], now, allow_private=True)


def test_redirects_are_not_followed() -> None:
    with (
        _receiver(status=302, headers_extra={"Location": "http://169.254.169.254/latest/"}) as url,
        pytest.raises(OSError, match="redirect"),
    ):
        post_json(url, b"{}", allow_private=True)


def test_error_status_is_an_error() -> None:
    with _receiver(status=500) as url, pytest.raises(OSError, match="500"):
        post_json(url, b"{}", allow_private=True)


def test_a_huge_answer_is_read_only_up_to_the_cap() -> None:
    with _receiver(body=b"x" * (MAX_RESPONSE_BYTES * 16)) as url:
        assert post_json(url, b"{}", allow_private=True) == 200


def test_a_trickling_receiver_is_cut_at_the_deadline() -> None:
    """Each byte arrives well inside the per-read timeout; only the overall deadline ends it (the
    receiver would take 10 s; pytest-timeout catches a guard that waits for it)."""
    with _receiver(trickle=True) as url, pytest.raises(OSError, match="failed"):
        post_json(url, b"{}", allow_private=True, timeout=0.5)
