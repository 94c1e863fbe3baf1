"""What a phone needs to find a public embedded server: this machine's addresses, the DNS records
(A/AAAA, SRV ``_xmpp-client._tcp`` and, with direct TLS, ``_xmpps-client._tcp``) and the ports to open."""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

_SIOCGIFADDR = 0x8915
# Shared address space (carrier-grade NAT) is not "private" to Python, but is not reachable either.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class DnsRecord:
    name: str
    type: str
    value: str

    def zone_line(self, width: int) -> str:
        return f"{self.name:<{width}} {self.type:<5} {self.value}"


def local_addresses(interfaces: tuple[str, ...]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses c2s can be reached at, loopback and link-local left out: the configured ones,
    or for "*" / "::" every address of this machine's network interfaces (Linux)."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for interface in interfaces:
        if interface in ("*", "0.0.0.0"):
            found += _ipv4_addresses()
        elif interface == "::":
            found += _ipv6_addresses()
        else:
            try:
                found.append(ipaddress.ip_address(interface))
            except ValueError:
                continue
    usable = [a for a in found if not (a.is_loopback or a.is_link_local or a.is_unspecified)]
    return sorted(set(usable), key=lambda a: (a.version, int(a)))


def is_reachable_from_internet(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global and address not in _CGNAT


def dns_records(domain: str, addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address], c2s_port: int,
                direct_tls_port: int | None) -> list[DnsRecord]:
    """The records of the zone of ``domain`` that point clients at this server (RFC 6120 §3.2.1, XEP-0368)."""
    host = domain.rstrip(".") + "."
    records = [DnsRecord(host, "A" if a.version == 4 else "AAAA", str(a)) for a in addresses]
    if not any(a.version == 4 for a in addresses):
        records.insert(0, DnsRecord(host, "A", "<this machine's public IPv4 address>"))
    records.append(DnsRecord(f"_xmpp-client._tcp.{host}", "SRV", f"0 5 {c2s_port} {host}"))
    if direct_tls_port is not None:
        records.append(DnsRecord(f"_xmpps-client._tcp.{host}", "SRV", f"0 5 {direct_tls_port} {host}"))
    return records


def _ipv4_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            request = array.array("B", struct.pack("256s", name.encode()[:15]))
            try:
                fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
            except OSError:  # no IPv4 address on this interface
                continue
            addresses.append(ipaddress.IPv4Address(bytes(request[20:24])))
    return addresses


def _ipv6_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return []
    return [ipaddress.IPv6Address(bytes.fromhex(line.split()[0])) for line in lines if line.strip()]
