"""The guarded client: private, loopback and metadata addresses are refused after DNS
resolution unless allow-listed; the connection goes to the address that was checked."""

import http.server
import ipaddress
import threading

import httpx
import pytest
from asgiref.sync import async_to_sync

from providers import http as guarded
from providers.http import OutboundBlocked, check_address, guarded_client


@pytest.fixture
def local_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"host={self.headers['Host']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def allowlist(settings):
    def set_(*entries):
        settings.WEFT_OUTBOUND_ALLOWLIST = list(entries)
        guarded.reset_allowlist()

    yield set_
    guarded.reset_allowlist()


def get(url):
    async def go():
        async with guarded_client() as client:
            return await client.get(url)

    return async_to_sync(go)()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "224.0.0.1",
    ],
)
def test_private_and_local_addresses_are_refused(address, allowlist):
    allowlist()
    with pytest.raises(OutboundBlocked, match="not allowed"):
        check_address("example.test", ipaddress.ip_address(address))


def test_public_addresses_pass(allowlist):
    allowlist()
    check_address("example.com", ipaddress.ip_address("93.184.215.14"))
    check_address("example.com", ipaddress.ip_address("2606:2800:21f:cb07:6820:80da:af6b:8b2c"))


def test_loopback_server_is_blocked_by_name_and_by_address(local_server, allowlist):
    allowlist()
    for host in ("127.0.0.1", "localhost"):
        with pytest.raises(OutboundBlocked) as caught:
            get(f"http://{host}:{local_server}/")
        assert caught.value.code == "outbound_blocked"


def test_allowlisted_network_is_reached_with_the_original_host_header(local_server, allowlist):
    allowlist("127.0.0.0/8")
    response = get(f"http://localhost:{local_server}/path")
    assert response.status_code == 200
    assert response.text == f"host=localhost:{local_server}"


def test_allowlisted_host_name(local_server, allowlist):
    allowlist("localhost")
    assert get(f"http://localhost:{local_server}/").status_code == 200
    with pytest.raises(OutboundBlocked):
        get(f"http://127.0.0.1:{local_server}/")


def test_other_schemes_are_refused(allowlist):
    allowlist("127.0.0.0/8")
    with pytest.raises((OutboundBlocked, httpx.UnsupportedProtocol)):
        get("file:///etc/passwd")


def test_unresolvable_host_is_a_connection_error(allowlist):
    allowlist()
    with pytest.raises(httpx.ConnectError):
        get("http://no-such-host.invalid/")
