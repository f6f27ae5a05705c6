"""The guarded HTTP client: every address class and notation is refused before a connection
is attempted, DNS is resolved once and the checked answer is the one connected to, redirects
are re-checked, time and size are capped, and the allowlist lets a loopback server through.

No DNS query leaves the machine (names come from a table, numeric forms from getaddrinfo with
AI_NUMERICHOST) and no socket connects anywhere but to the test's own loopback servers: any
other connect fails the test, which is how "refused before connecting" is checked."""

import datetime
import http.server
import ipaddress
import json
import socket
import ssl
import threading
import time
from urllib.parse import parse_qsl, quote, urlsplit

import anyio
import httpx
import pytest
from asgiref.sync import async_to_sync
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from providers import http as guarded
from providers.http import (
    OutboundBlocked,
    OutboundError,
    OutboundTimeout,
    OutboundTooLarge,
    check_address,
    guarded_client,
    guarded_request,
    guarded_request_sync,
    is_forbidden,
    transport,
)

SECRET = "hunter2"


# --- Fixtures: a socket guard, a resolver table, loopback servers ----------------------------


class Attempts(list):
    """Addresses the code under test tried to connect to; only `permitted` ones go through."""

    def __init__(self):
        super().__init__()
        self.permitted = set()


@pytest.fixture(autouse=True)
def attempts(monkeypatch):
    made = Attempts()
    real_connect = socket.socket.connect

    def connect(sock, address):
        made.append(tuple(address[:2]))
        if tuple(address[:2]) not in made.permitted:
            raise AssertionError(f"the test tried to connect to {address}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        raise AssertionError(f"the test tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return made


class Resolver:
    """answers[name] = a list of answers given in turn (the last repeats); asked = lookups."""

    def __init__(self):
        self.answers = {"localhost": [["127.0.0.1"]]}
        self.delays = {}
        self.asked = []

    async def __call__(self, host, port):
        self.asked.append(host)
        if host in self.delays:
            await anyio.sleep(self.delays[host])
        if host in self.answers:
            turns = self.answers[host]
            answer = turns.pop(0) if len(turns) > 1 else turns[0]
            family = {4: socket.AF_INET, 6: socket.AF_INET6}
            return [
                (family[ipaddress.ip_address(a).version], socket.SOCK_STREAM, 6, "", (a, port))
                for a in answer
            ]
        return await anyio.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    resolver = Resolver()
    monkeypatch.setattr(transport, "_getaddrinfo", resolver)
    return resolver


@pytest.fixture(autouse=True)
def allowlist(settings):
    """Nothing allowed unless a test says so (the package's conftest allows loopback)."""

    def set_(*entries):
        settings.WEFT_OUTBOUND_ALLOWLIST = list(entries)
        guarded.reset_allowlist()

    set_()
    yield set_
    guarded.reset_allowlist()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

    def do_GET(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        route = getattr(self, f"route_{url.path.strip('/')}", self.route_echo)
        route(dict(parse_qsl(url.query)))

    do_POST = do_PUT = do_GET

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_echo(self, query):
        seen = {
            name: self.headers[name]
            for name in ("Host", "Authorization", "Cookie", "X-Trace", "Content-Type")
        }
        seen |= {"method": self.command, "path": self.path, "body": self.body.decode()}
        self.reply(200, json.dumps(seen).encode(), [("Content-Type", "application/json")])

    def route_redirect(self, query):
        self.reply(int(query.get("status", 302)), headers=[("Location", query["to"])])

    def route_chain(self, query):
        hops = int(query["n"])
        if hops:
            self.reply(302, headers=[("Location", f"/chain?n={hops - 1}")])
        else:
            self.reply(200, b"end")

    def route_bytes(self, query):
        self.reply(200, b"x" * int(query["size"]))

    def route_stream(self, query):
        """Up to 256 MiB, chunked, until the client hangs up."""
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(4096):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.server.sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True

    def route_slow(self, query):
        time.sleep(float(query["delay"]))
        self.reply(200, b"late")

    def route_drip(self, query):
        """50 bytes, one every 0.1 s: each read is quick, the whole takes 5 s."""
        self.send_response(200)
        self.send_header("Content-Length", "50")
        self.end_headers()
        try:
            for _ in range(50):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    def route_cookie(self, query):
        self.reply(200, b"set", [("Set-Cookie", "session=tenant-a; Path=/")])

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    sent = 0  # bytes /stream wrote before the client hung up

    @property
    def port(self):
        return self.server_address[1]

    def url(self, path="/echo", host="127.0.0.1", scheme="http"):
        return f"{scheme}://{host}:{self.port}{path}"

    def redirect(self, to, status=302, host="127.0.0.1"):
        """A URL on this server that answers `status` with Location: `to`."""
        return self.url(f"/redirect?status={status}&to={quote(to, safe='')}", host=host)


def serve(server, attempts):
    """Serve in a thread (quick to shut down) and let the socket guard connect to it."""
    attempts.permitted.add(("127.0.0.1", server.port))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def server(attempts):
    srv = Server(("127.0.0.1", 0), Handler)
    serve(srv, attempts)
    yield srv
    srv.shutdown()
    srv.server_close()


def request(method, url, **options):
    return async_to_sync(guarded_request)(method, url, **options)


def get(url):
    async def go():
        async with guarded_client() as client:
            return await client.get(url)

    return async_to_sync(go)()


# --- Address classes ---------------------------------------------------------------------


REFUSED_ADDRESSES = [
    "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
    "0.1.2.3",
    "10.1.2.3",
    "100.64.0.1",  # carrier-grade NAT: not in Python's is_private
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.1.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.1",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.19.255.255",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::127.0.0.1",  # IPv4-compatible
    "::8.8.8.8",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",
    "64:ff9b:1::1",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1",
    "100::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "febf::1",
    "fec0::1",  # site-local: Python calls it global
    "ff02::1",
    "ff0e::1",
]
METADATA = [
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "192.0.0.192",
    "168.63.129.16",
    "fd00:ec2::254",
    "::ffff:169.254.169.254",
]
PUBLIC = [
    "8.8.8.8",
    "93.184.215.14",
    "2606:4700:4700::1111",
    "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of a public address: IPv6-only hosts behind DNS64 need it
    "2002:808:808::1",
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES + METADATA)
def test_private_local_and_reserved_addresses_are_refused(address):
    assert is_forbidden(ipaddress.ip_address(address)) or address in METADATA
    with pytest.raises(OutboundBlocked, match="not allowed") as caught:
        check_address("example.test", ipaddress.ip_address(address))
    assert caught.value.code == "outbound_blocked" and caught.value.status == 400


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert not is_forbidden(ipaddress.ip_address(address))
    check_address("example.com", ipaddress.ip_address(address))


@pytest.mark.parametrize("address", METADATA)
def test_metadata_is_refused_even_when_the_allowlist_covers_it(address, allowlist):
    allowlist("0.0.0.0/0", "::/0", "example.test")
    with pytest.raises(OutboundBlocked, match="metadata"):
        check_address("example.test", ipaddress.ip_address(address))


# --- Notations: decided by the address connected to, refused before any connect -----------


NOTATIONS = [
    "http://127.0.0.1:{port}/",
    "http://2130706433:{port}/",  # decimal
    "http://017700000001:{port}/",  # octal
    "http://0177.1:{port}/",
    "http://0x7f.1:{port}/",  # hex
    "http://0x7f000001:{port}/",
    "http://0x7f.0x0.0x0.0x1:{port}/",
    "http://127.1:{port}/",  # short form
    "http://0:{port}/",
    "http://127.0.0.1.:{port}/",  # trailing dot
    "http://localhost:{port}/",
    "http://LOCALHOST:{port}/",
    "http://good.example@127.0.0.1:{port}/",  # user-info trick
    "http://user:pass@localhost:{port}/",
    "http://[::1]:{port}/",
    "http://[::]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://[64:ff9b::7f00:1]:{port}/",
    "http://[2002:7f00:1::]:{port}/",
    "http://[fe80::1%25eth0]:{port}/",  # zone id
    "http://0xa9fea9fe/latest/meta-data/",  # 169.254.169.254
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "HTTP://10.0.0.1/",
    "https://192.168.0.1/",
]


@pytest.mark.parametrize("template", NOTATIONS)
def test_every_notation_is_refused_before_connecting(template, server, attempts):
    url = template.format(port=server.port)
    with pytest.raises(OutboundBlocked, match="not allowed"):
        request("GET", url)
    with pytest.raises(OutboundBlocked):
        get(url)  # the providers' client: the same guard
    assert attempts == []


@pytest.mark.parametrize(
    "url",
    [
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./computeMetadata/v1/",
        "http://metadata/computeMetadata/v1/",
        "http://instance-data/latest/",
    ],
)
def test_metadata_names_are_refused_before_resolving(url, dns, attempts, allowlist):
    allowlist("0.0.0.0/0")
    with pytest.raises(OutboundBlocked, match="metadata"):
        request("GET", url)
    assert dns.asked == [] and attempts == []


def test_an_international_name_is_resolved_as_punycode_and_checked(dns, attempts):
    dns.answers["xn--bcher-kva.test"] = [["10.0.0.7"]]
    with pytest.raises(OutboundBlocked, match=r"10\.0\.0\.7"):
        request("GET", "http://bücher.test/")
    assert dns.asked == ["xn--bcher-kva.test"] and attempts == []


@pytest.mark.parametrize(
    "url",
    [
        "http://0177.0.0.1/",
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",  # full-width digits
        "http://xn--localhost-/",
    ],
)
def test_urls_httpx_cannot_read_are_refused(url, attempts):
    with pytest.raises(OutboundError) as caught:
        request("GET", url)
    assert caught.value.code == "outbound_invalid_url" and attempts == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "example.com/x"])
def test_other_schemes_are_refused(url, attempts):
    with pytest.raises(OutboundBlocked, match="http and https"):
        request("GET", url)
    with pytest.raises((OutboundBlocked, httpx.UnsupportedProtocol)):
        get(url)
    assert attempts == []


# --- Resolution: every answer checked, the checked one connected to -----------------------


def test_a_name_with_one_private_answer_is_refused(dns, attempts):
    dns.answers["mixed.test"] = [["93.184.215.14", "10.0.0.1"]]
    with pytest.raises(OutboundBlocked, match=r"10\.0\.0\.1"):
        request("GET", "http://mixed.test/")
    assert attempts == []  # not even the public answer is tried


def test_rebinding_the_name_after_the_check_never_reaches_a_socket(
    server, dns, attempts, allowlist
):
    allowlist("127.0.0.1/32")  # stands for a public address here
    dns.answers["rebind.test"] = [["127.0.0.1"], ["10.0.0.1"]]
    url = server.url(host="rebind.test")

    async def twice():
        first = await guarded_request("GET", url)
        second = await guarded_request("GET", url)  # the kept-alive connection
        return first, second

    first, second = async_to_sync(twice)()
    assert first.json()["Host"] == second.json()["Host"] == f"rebind.test:{server.port}"
    assert dns.asked == ["rebind.test"]
    assert attempts == [("127.0.0.1", server.port)]
    with pytest.raises(OutboundBlocked, match=r"10\.0\.0\.1"):
        request("GET", url)  # a new connection resolves again, and is checked again
    assert attempts == [("127.0.0.1", server.port)]


def test_the_checked_answers_are_tried_in_order(server, dns, attempts, allowlist):
    allowlist("127.0.0.0/8")
    attempts.permitted.add(("127.0.0.2", server.port))  # nothing listens there
    dns.answers["two.test"] = [["127.0.0.2", "127.0.0.1"]]
    assert request("GET", server.url(host="two.test")).status_code == 200
    assert attempts == [("127.0.0.2", server.port), ("127.0.0.1", server.port)]


def test_unresolvable_host_is_a_connection_error(attempts):
    with pytest.raises(httpx.ConnectError):
        get("http://no-such-host.invalid/")
    with pytest.raises(OutboundError, match=r"Cannot resolve no-such-host\.invalid") as caught:
        request("GET", "http://no-such-host.invalid/")
    assert caught.value.code == "outbound_failed" and attempts == []


# --- Allowlist and ports -----------------------------------------------------------------


def test_loopback_server_is_blocked_by_name_and_by_address(server, attempts):
    for host in ("127.0.0.1", "localhost"):
        with pytest.raises(OutboundBlocked) as caught:
            get(server.url(host=host))
        assert caught.value.code == "outbound_blocked"
    assert attempts == []


def test_allowlisted_network_is_reached_with_the_original_host_header(server, allowlist):
    allowlist("127.0.0.0/8")
    response = get(server.url("/path", host="localhost"))
    assert response.status_code == 200
    assert response.json()["Host"] == f"localhost:{server.port}"


def test_allowlisted_host_name(server, allowlist, attempts):
    allowlist("localhost")
    assert request("GET", server.url(host="localhost")).status_code == 200
    with pytest.raises(OutboundBlocked):
        request("GET", server.url(host="127.0.0.1"))
    assert attempts == [("127.0.0.1", server.port)]


def test_ports_can_be_restricted(server, allowlist, settings, attempts):
    allowlist("127.0.0.1/32")
    settings.WEFT_OUTBOUND_ALLOWED_PORTS = [443]
    with pytest.raises(OutboundBlocked, match=f"port {server.port}"):
        request("GET", server.url())
    assert attempts == []
    settings.WEFT_OUTBOUND_ALLOWED_PORTS = [443, server.port]
    assert request("GET", server.url()).status_code == 200


# --- Redirects ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/echo",
        "http://[::1]:{port}/echo",
        "http://169.254.169.254/latest/meta-data/",
        "http://0x7f.0.0.2:{port}/echo",
    ],
)
def test_a_redirect_to_a_refused_address_is_refused(target, server, allowlist, attempts):
    allowlist("127.0.0.1/32")
    url = server.redirect(target.format(port=server.port))
    with pytest.raises(OutboundBlocked, match=r"127\.0\.0\.1 redirected to a refused destination"):
        request("GET", url)

    async def through_httpx():
        async with guarded_client(follow_redirects=True) as client:
            return await client.get(url)

    with pytest.raises(OutboundBlocked):
        async_to_sync(through_httpx)()
    assert set(attempts) == {("127.0.0.1", server.port)}


def test_a_redirect_to_another_scheme_is_refused(server, allowlist):
    allowlist("127.0.0.1/32")
    with pytest.raises(OutboundBlocked, match="redirected to a file URL"):
        request("GET", server.redirect("file:///etc/passwd"))


def test_redirects_are_bounded_by_the_setting(server, allowlist, settings):
    allowlist("127.0.0.1/32")
    assert settings.WEFT_OUTBOUND_MAX_REDIRECTS == 5
    assert request("GET", server.url("/chain?n=5")).body == b"end"
    for options in ({}, {"max_redirects": 50}):
        with pytest.raises(OutboundError, match="more than 5 times") as caught:
            request("GET", server.url("/chain?n=6"), **options)
        assert caught.value.code == "outbound_too_many_redirects"
    with pytest.raises(OutboundError, match="more than 1 times"):
        request("GET", server.url("/chain?n=2"), max_redirects=1)
    unfollowed = request("GET", server.url("/chain?n=2"), follow_redirects=False)
    assert unfollowed.status_code == 302 and unfollowed.headers["location"] == "/chain?n=1"


def test_redirects_follow_browser_methods_and_keep_credentials_on_their_origin(
    server, allowlist, dns
):
    allowlist("127.0.0.1/32")
    dns.answers["other.test"] = [["127.0.0.1"]]
    headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"s={SECRET}", "X-Trace": "t1"}

    kept = request("PUT", server.redirect("/echo", 307), content=b"v", headers=headers)
    assert kept.json() | {"Host": None} == {
        "Host": None,
        "Authorization": f"Bearer {SECRET}",
        "Cookie": f"s={SECRET}",
        "X-Trace": "t1",
        "Content-Type": None,
        "method": "PUT",
        "path": "/echo",
        "body": "v",
    }
    posted = request("POST", server.redirect("/echo", 308), json={"a": 1}, headers=headers).json()
    assert (posted["method"], posted["body"]) == ("POST", '{"a":1}')
    assert posted["Content-Type"] == "application/json"
    for status in (301, 302, 303):
        changed = request("POST", server.redirect("/echo", status), data={"a": "1"})
        assert (changed.json()["method"], changed.json()["body"]) == ("GET", "")

    # other.test, then a relative hop on other.test: the credentials stay with 127.0.0.1
    elsewhere = server.redirect(server.redirect("/echo", host="other.test"))
    moved = request("GET", elsewhere, headers=headers).json()
    assert (moved["Host"], moved["path"]) == (f"other.test:{server.port}", "/echo")
    assert (moved["Authorization"], moved["Cookie"], moved["X-Trace"]) == (None, None, "t1")
    round_trip = server.redirect(server.redirect(server.url(), host="other.test"))
    home = request("GET", round_trip, headers=headers).json()
    assert (home["Host"], home["Authorization"]) == (f"127.0.0.1:{server.port}", f"Bearer {SECRET}")


# --- Caps --------------------------------------------------------------------------------


def test_the_body_is_capped_and_the_read_stops(server, allowlist):
    allowlist("127.0.0.1/32")
    with pytest.raises(OutboundTooLarge, match="larger than 100000 bytes") as caught:
        request("GET", server.url(f"/stream?token={SECRET}"), max_bytes=100_000)
    assert caught.value.code == "outbound_too_large" and SECRET not in caught.value.message
    assert server.sent < 64 << 20  # of 256 MiB offered

    cut = request("GET", server.url("/stream"), max_bytes=100_000, truncate=True)
    assert (len(cut.body), cut.truncated) == (100_000, True)
    whole = request("GET", server.url("/bytes?size=100000"), max_bytes=100_000)
    assert (len(whole.body), whole.truncated) == (100_000, False)


def test_size_overrides_are_bounded_by_the_setting(server, allowlist, settings):
    allowlist("127.0.0.1/32")
    settings.WEFT_OUTBOUND_MAX_RESPONSE_BYTES = 1000
    with pytest.raises(OutboundTooLarge, match="larger than 1000 bytes"):
        request("GET", server.url("/bytes?size=5000"), max_bytes=10**9)
    with pytest.raises(ValueError, match="positive"):
        request("GET", server.url(), max_bytes=0)


def elapsed(call):
    start = time.monotonic()
    with pytest.raises(OutboundTimeout) as caught:
        call()
    return time.monotonic() - start, caught.value


def test_a_slow_answer_times_out(server, allowlist):
    allowlist("127.0.0.1/32")
    took, error = elapsed(
        lambda: request("GET", server.url(f"/slow?delay=3&token={SECRET}"), timeout=0.5)
    )
    assert took < 2 and error.code == "outbound_timeout" and error.status == 504
    assert SECRET not in error.message


def test_the_total_time_is_capped_even_while_bytes_keep_coming(server, allowlist):
    allowlist("127.0.0.1/32")
    took, error = elapsed(lambda: request("GET", server.url("/drip"), timeout=1))
    assert 0.9 < took < 2.5
    assert error.message == "127.0.0.1 did not answer within 1 s."


def test_time_overrides_are_bounded_by_the_setting(server, allowlist, settings):
    allowlist("127.0.0.1/32")
    settings.WEFT_OUTBOUND_MAX_TIMEOUT = 0.5
    took, _ = elapsed(lambda: request("GET", server.url("/slow?delay=3"), timeout=60))
    assert took < 2


def test_resolving_counts_against_the_connect_timeout(dns, allowlist):
    dns.delays["slow-dns.test"] = 5
    dns.answers["slow-dns.test"] = [["93.184.215.14"]]
    took, error = elapsed(
        lambda: request("GET", "http://slow-dns.test/", connect_timeout=0.3, timeout=10)
    )
    assert took < 2 and "ConnectTimeout" in error.message


# --- Errors, secrets, clients ------------------------------------------------------------


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_errors_and_logs_never_carry_the_urls_secrets(allowlist, attempts, caplog):
    caplog.set_level("DEBUG")
    headers = {"Authorization": f"Bearer {SECRET}", "X-Api-Key": SECRET}
    with pytest.raises(OutboundBlocked) as blocked:
        request("POST", f"http://u:{SECRET}@10.0.0.1/hook/{SECRET}?key={SECRET}", headers=headers)
    allowlist("127.0.0.1/32")
    port = closed_port()
    attempts.permitted.add(("127.0.0.1", port))
    with pytest.raises(OutboundError) as refused:
        request("GET", f"http://u:{SECRET}@127.0.0.1:{port}/{SECRET}?key={SECRET}", headers=headers)
    assert refused.value.code == "outbound_failed"
    assert refused.value.message.startswith("Could not connect to 127.0.0.1")
    for text in (blocked.value.message, refused.value.message, caplog.text):
        assert SECRET not in text
    assert "10.0.0.1" in caplog.text  # the refusal is logged, by host


def test_the_response_is_read_in_full_and_its_url_has_no_user_info(server, allowlist):
    allowlist("127.0.0.1/32")
    response = request("GET", f"http://u:{SECRET}@127.0.0.1:{server.port}/echo?q=1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["Authorization"].startswith("Basic ")
    assert response.url == f"http://127.0.0.1:{server.port}/echo?q=1"
    assert json.loads(response.text)["path"] == "/echo?q=1" and not response.truncated


def test_the_sync_variant(server, allowlist):
    allowlist("127.0.0.1/32")
    response = guarded_request_sync("POST", server.url(), content=b"hi", timeout=5)
    assert response.json()["body"] == "hi"
    with pytest.raises(OutboundBlocked):
        guarded_request_sync("GET", "http://10.0.0.1/")


def test_the_shared_client_keeps_no_cookies(server, allowlist):
    allowlist("127.0.0.1/32")

    async def go():
        await guarded_request("GET", server.url("/cookie"))
        return await guarded_request("GET", server.url())

    assert async_to_sync(go)().json()["Cookie"] is None


def test_only_guarded_clients_are_taken():
    async def plain():
        async with httpx.AsyncClient() as client:
            await guarded_request("GET", "http://example.com/", client=client)

    with pytest.raises(TypeError, match="guarded_client"):
        async_to_sync(plain)()
    for bypass in ({"proxy": "http://proxy.example:3128"}, {"mounts": {}}):
        with pytest.raises(TypeError, match="bypass the guard"):
            guarded_client(**bypass)


# --- TLS: the name is kept for SNI and the certificate check -------------------------------


def self_signed(name, folder):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class TLSServer(Server):
    def __init__(self, address, handler, context):
        super().__init__(address, handler)
        self.context = context

    def get_request(self):
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True), address


@pytest.fixture
def tls_server(attempts, tmp_path):
    cert_file, key_file = self_signed("weft.test", tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    srv = TLSServer(("127.0.0.1", 0), Handler, context)
    srv.tls_names = []
    context.sni_callback = lambda sock, name, ctx: srv.tls_names.append(name)
    serve(srv, attempts)
    yield srv, ssl.create_default_context(cafile=str(cert_file))
    srv.shutdown()
    srv.server_close()


def test_tls_is_checked_against_the_name_not_the_address(tls_server, dns, allowlist):
    server, trust = tls_server
    allowlist("127.0.0.1/32")
    dns.answers["weft.test"] = [["127.0.0.1"]]
    response = request("GET", server.url(host="weft.test", scheme="https"), verify=trust)
    assert response.json()["Host"] == f"weft.test:{server.port}"
    assert server.tls_names == ["weft.test"]
    with pytest.raises(OutboundError, match="CERTIFICATE_VERIFY_FAILED"):
        request("GET", server.url(host="127.0.0.1", scheme="https"), verify=trust)
