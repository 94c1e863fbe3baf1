"""The DNS records and addresses the public mode prints."""

from __future__ import annotations

import ipaddress

from agentchat.server.dns_records import dns_records, is_reachable_from_internet, local_addresses


def test_records_for_both_address_families_and_both_ports() -> None:
    addresses = [ipaddress.ip_address("203.0.113.7"), ipaddress.ip_address("2001:db8::7")]
    records = [(r.name, r.type, r.value) for r in dns_records("chat.example.org", addresses, 5222, 5223)]
    assert records == [
        ("chat.example.org.", "A", "203.0.113.7"),
        ("chat.example.org.", "AAAA", "2001:db8::7"),
        ("_xmpp-client._tcp.chat.example.org.", "SRV", "0 5 5222 chat.example.org."),
        ("_xmpps-client._tcp.chat.example.org.", "SRV", "0 5 5223 chat.example.org."),
    ]


def test_without_an_ipv4_address_the_a_record_says_what_to_put() -> None:
    records = dns_records("chat.example.org", [], 5222, None)
    assert [(r.type, r.value) for r in records] == [
        ("A", "<this machine's public IPv4 address>"), ("SRV", "0 5 5222 chat.example.org.")]


def test_configured_addresses_are_listed_loopback_and_link_local_are_not() -> None:
    found = local_addresses(("192.0.2.10", "127.0.0.1", "fe80::1", "2606:4700::1111"))
    assert [str(a) for a in found] == ["192.0.2.10", "2606:4700::1111"]
    assert all(not a.is_loopback for a in local_addresses(("*", "::")))  # this machine's own


def test_private_and_shared_addresses_are_flagged_as_unreachable() -> None:
    assert not is_reachable_from_internet(ipaddress.ip_address("192.168.1.20"))
    assert not is_reachable_from_internet(ipaddress.ip_address("100.101.102.103"))  # carrier-grade NAT, Tailscale
    assert is_reachable_from_internet(ipaddress.ip_address("8.8.8.8"))
