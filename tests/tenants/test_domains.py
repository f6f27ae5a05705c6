"""Custom domains: claimed with checks, verified against a real DNS server on loopback (a
UDP socket answering TXT queries), through the service and `manage.py verify_domain`; then
served for the tenant's portals only."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from django.core.management import call_command

from apps.models import App
from apps.services.apps import app_create
from tenants import domains
from tenants.exceptions import Conflict, InvalidInput
from tenants.models import CustomDomain

pytestmark = pytest.mark.django_db


class FakeDns:
    """A name server on 127.0.0.1 that answers TXT queries from `records` (name -> values),
    NXDOMAIN for other names, and nothing at all while `silent`."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.silent = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if self.silent:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            values = self.records.get(name)
            if values is None:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.TXT:
                reply.answer.append(
                    dns.rrset.from_text(question.name, 60, "IN", "TXT", *[f'"{v}"' for v in values])
                )
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake_dns(settings) -> Iterator[FakeDns]:
    server = FakeDns()
    settings.WEFT_DNS_NAMESERVERS = f"127.0.0.1:{server.port}"
    settings.WEFT_DNS_TIMEOUT = 0.5
    yield server
    server.close()


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("10.0.0.1", "not an IP"),
        ("[::1]", "not an IP"),
        ("not a domain", "not a host name"),
        ("localhost", "not a host name"),
        ("chat..acme.com", "not a host name"),
        (42, "must be text"),
    ],
)
def test_bad_domains_are_refused(tenant, domain, message):
    with pytest.raises(InvalidInput, match=message):
        domains.domain_add(tenant=tenant, domain=domain)


def test_the_platforms_own_hosts_cannot_be_claimed(tenant, settings):
    settings.WEFT_ALLOWED_HOSTS = ["weft.example.com"]
    for name in ("weft.example.com", "evil.weft.example.com"):
        with pytest.raises(InvalidInput, match="belongs to this Weft"):
            domains.domain_add(tenant=tenant, domain=name)


def test_a_domain_is_claimed_once(tenant, other_tenant):
    domains.domain_add(tenant=tenant, domain="Chat.Acme.com.")
    with pytest.raises(Conflict):
        domains.domain_add(tenant=other_tenant, domain="chat.acme.com")


def test_verification_through_dns(tenant, fake_dns):
    domain = domains.domain_add(tenant=tenant, domain="chat.acme.com")
    assert not domains.domain_verify(domain=domain)
    assert "does not exist" in domain.last_error
    fake_dns.records["_weft-verify.chat.acme.com"] = ["weft-verify=someone-elses"]
    assert not domains.domain_verify(domain=domain)
    assert "does not hold" in domain.last_error
    fake_dns.records["_weft-verify.chat.acme.com"].append(domains.record_value(domain))
    assert domains.domain_verify(domain=domain)
    domain.refresh_from_db()
    assert domain.verified_at is not None and domain.last_error == ""
    fake_dns.silent = True
    assert not domains.domain_verify(domain=domain)
    assert "did not answer" in domain.last_error and domain.verified_at is None


def test_the_command(tenant, fake_dns, capsys):
    domain = domains.domain_add(tenant=tenant, domain="chat.acme.com")
    with pytest.raises(SystemExit) as exited:
        call_command("verify_domain", "chat.acme.com")
    assert exited.value.code == 1
    assert "not verified" in capsys.readouterr().out
    fake_dns.records["_weft-verify.chat.acme.com"] = [domains.record_value(domain)]
    call_command("verify_domain", "--all")
    assert "chat.acme.com: verified" in capsys.readouterr().out
    with pytest.raises(Exception, match="No tenant has claimed"):
        call_command("verify_domain", "nobody.example.org")


def verified(tenant, name: str, site=None) -> CustomDomain:
    domain = domains.domain_add(tenant=tenant, domain=name, site=site)
    CustomDomain.dangerously_unscoped.filter(pk=domain.pk).update(verified_at="2026-01-01T00:00Z")
    return domain


def test_a_verified_domain_serves_its_tenants_portals_only(client, tenant, other_tenant):
    ours = app_create(tenant=tenant, name="Ours", mode=App.Mode.CHAT)
    theirs = app_create(tenant=other_tenant, name="Theirs", mode=App.Mode.CHAT)
    verified(tenant, "chat.acme.com")
    host = {"HTTP_HOST": "chat.acme.com"}
    assert client.get(f"/c/{ours.site.code}/", **host).status_code == 200
    assert client.get(f"/c/{theirs.site.code}/", **host).status_code == 404
    assert client.get("/admin/", **host).status_code == 404
    assert client.get("/api/apps/", **host).status_code == 404
    assert client.get("/v1/info", **host).status_code == 404
    unknown = client.get(f"/c/{ours.site.code}/", HTTP_HOST="unverified.acme.com")
    assert unknown.status_code == 404 and "Page not found" in unknown.content.decode()


def test_a_domain_of_one_site_opens_it_at_its_root(client, tenant):
    one = app_create(tenant=tenant, name="One", mode=App.Mode.CHAT)
    other = app_create(tenant=tenant, name="Other", mode=App.Mode.CHAT)
    verified(tenant, "help.acme.com", site=one.site)
    root = client.get("/", HTTP_HOST="help.acme.com")
    assert root.status_code == 302 and root["Location"] == f"/c/{one.site.code}/"
    assert client.get(f"/c/{other.site.code}/", HTTP_HOST="help.acme.com").status_code == 404


# --- The console's Custom domains page ------------------------------------------------------------

DOMAINS = "/admin/domains/"


def test_an_admin_claims_verifies_and_removes_a_domain(console, make_member, tenant, fake_dns):
    from tenants.roles import Role

    one = app_create(tenant=tenant, name="One", mode=App.Mode.CHAT)
    admin_client = console(make_member(tenant, Role.ADMIN), tenant)
    assert "only One" in admin_client.get(DOMAINS).content.decode()
    claimed = admin_client.post(
        f"{DOMAINS}add/", {"domain": "help.acme.com", "site": str(one.site.pk)}, follow=True
    )
    text = claimed.content.decode()
    domain = CustomDomain.dangerously_unscoped.get(domain="help.acme.com")
    assert domain.site_id == one.site.pk and domains.record_value(domain) in text
    refused = admin_client.post(f"{DOMAINS}add/", {"domain": "10.0.0.1"})
    assert "not an IP" in refused.content.decode()
    failed = admin_client.post(f"{DOMAINS}verify/", {"id": str(domain.pk)}, follow=True)
    assert "is not verified" in failed.content.decode()
    fake_dns.records["_weft-verify.help.acme.com"] = [domains.record_value(domain)]
    passed = admin_client.post(f"{DOMAINS}verify/", {"id": str(domain.pk)}, follow=True)
    assert "is verified" in passed.content.decode()
    admin_client.post(f"{DOMAINS}remove/", {"id": str(domain.pk)})
    assert not CustomDomain.dangerously_unscoped.filter(pk=domain.pk).exists()


def test_builders_see_domains_but_cannot_claim_and_others_stay_hidden(
    console, make_member, tenant, other_tenant
):
    from tenants.roles import Role

    theirs = domains.domain_add(tenant=other_tenant, domain="chat.globex.com")
    builder = console(make_member(tenant, Role.BUILDER), tenant)
    page = builder.get(DOMAINS)
    assert page.status_code == 200 and "chat.globex.com" not in page.content.decode()
    assert builder.post(f"{DOMAINS}add/", {"domain": "x.acme.com"}).status_code == 403
    owner = console(make_member(tenant, Role.OWNER), tenant)
    assert owner.post(f"{DOMAINS}remove/", {"id": str(theirs.pk)}).status_code == 404
    assert owner.post(f"{DOMAINS}verify/", {"id": "not-a-uuid"}).status_code == 404
