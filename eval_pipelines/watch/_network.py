"""Network attempts seen at the kernel boundary: a trap route in the sandbox's network namespace.

A tun device `trap0` holds the IPv4 and IPv6 default routes of the namespace the sandboxed
code runs in. Whatever it sends off its own network (a TCP SYN, a UDP datagram such as a DNS
query, an ICMP echo) is routed into `trap0`, whose other end is a file descriptor of this
process: the packet is read here and goes nowhere else. It is reported (destination, port,
protocol, time, and the name looked up for a DNS query) and answered with an ICMP
"administratively prohibited", so the sandboxed program fails at once ("No route to host")
instead of hanging until its own timeout.

- bwrap: each exec gets a namespace made here, by root, and joined by bubblewrap
  (`nsenter --net` before it, `--share-net` in it), holding only loopback and `trap0`.
- containers: the trap is added to each container's own namespace (`NetworkTrap.join`),
  replacing the engine's default route; the sample's private network keeps its own, more
  specific route, so services still reach each other. The engine's DNS server forwards
  lookups of outside names from inside that namespace: they land in the trap too.

The namespace belongs to the host's user namespace and the sandboxed code holds no
CAP_NET_ADMIN (unless a compose file grants it, which is recorded), so it cannot reconfigure
`trap0` or change routes. What the watch does not see is what never becomes a packet:
loopback traffic, and attempts refused before routing (unix sockets to host paths).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

IP = "/usr/sbin/ip"
NSENTER = "/usr/bin/nsenter"
TUN_DEVICE = "/dev/net/tun"
TRAP = "trap0"
# The sandbox's own addresses on trap0: the benchmarking range (RFC 2544) and a unique-local
# prefix, which no host on a real network should use (a host address equal to one of these
# would be local inside the sandbox: refused, but not reported).
TRAP_IPV4, TRAP_IPV6 = "198.18.0.2", "fd00:e7a1::2"
# The resolver the sandbox's resolv.conf names: a lookup is a UDP datagram into the trap.
RESOLVER = "198.18.0.53"
RESOLV_CONF = f"nameserver {RESOLVER}\noptions timeout:1 attempts:1\n"

_TUNSETIFF, _IFF_TUN, _IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
_SETUP = "\n".join(
    [
        "link set lo up",
        f"addr add {TRAP_IPV4}/32 dev {TRAP}",
        f"addr add {TRAP_IPV6}/128 dev {TRAP} nodad",
        f"link set {TRAP} up",
        f"route add 0.0.0.0/0 dev {TRAP}",
        f"route add ::/0 dev {TRAP}",
        "",
    ]
)
# A container's namespace: its own interfaces stay; the default routes move to the trap.
_JOIN_SETUP = "\n".join(
    [
        f"addr add {TRAP_IPV4}/32 dev {TRAP}",
        f"link set {TRAP} up",
        f"route replace default dev {TRAP}",
        "",
    ]
)
_JOIN_SETUP_IPV6 = f"addr add {TRAP_IPV6}/128 dev {TRAP} nodad\nroute replace ::/0 dev {TRAP}\n"
_PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp"}
# The kernel's own traffic on an interface coming up, not the sandbox's: IPv6 neighbour
# discovery and multicast listener reports, IPv4 IGMP.
_ICMPV6_HOUSEKEEPING = {130, 131, 132, 133, 134, 135, 136, 137, 143}
_IGMP = 2


class NetworkTrapError(RuntimeError):
    """The trap namespace could not be made: the exec must not run without it."""


@dataclass(frozen=True)
class Attempt:
    """One packet the sandbox tried to send off its own network."""

    destination: str
    port: int | None
    protocol: str
    at: float
    query: str | None = None  # the name a DNS query asked for
    source: str | None = None  # which of a sample's containers sent it

    def details(self) -> dict[str, object]:
        details: dict[str, object] = {
            "destination": self.destination,
            "port": self.port,
            "protocol": self.protocol,
        }
        if self.query is not None:
            details["query"] = self.query
        if self.source is not None:
            details["source"] = self.source
        return details


def _dns_query(datagram: bytes) -> str | None:
    """The first question's name of a DNS query in a UDP datagram (header included)."""
    message, labels, offset = datagram[8:], [], 12
    if len(message) < 12 or message[2] & 0x80:  # too short, or a response
        return None
    while offset < len(message) and (length := message[offset]) != 0:
        if length & 0xC0 or offset + 1 + length > len(message):
            return None  # queries carry no compression pointers; malformed
        labels.append(message[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    return ".".join(labels) or None


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4_reply(packet: bytes) -> bytes:
    """ICMP destination unreachable, administratively prohibited (code 13), from the
    destination itself, quoting the packet's header and first 8 bytes as RFC 792 says."""
    header_length = (packet[0] & 0x0F) * 4
    quoted = packet[: header_length + 8]
    icmp = struct.pack("!BBHI", 3, 13, 0, 0) + quoted
    icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, packet[16:20], packet[12:16]
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + icmp


def _ipv6_reply(packet: bytes) -> bytes:
    """ICMPv6 destination unreachable, administratively prohibited (type 1, code 1)."""
    source, destination = packet[24:40], packet[8:24]
    body = struct.pack("!BBHI", 1, 1, 0, 0) + packet[: 1280 - 48]
    pseudo = source + destination + struct.pack("!I3xB", len(body), 58)
    body = body[:2] + struct.pack("!H", _checksum(pseudo + body)) + body[4:]
    header = struct.pack("!IHBB", 6 << 28, len(body), 58, 64) + source + destination
    return header + body


def _ipv4_dns_refusal(packet: bytes) -> bytes:
    """A DNS answer REFUSED to an IPv4 query, from the server it asked: a resolver that
    forwards (a container engine's) gets an answer at once, not an ICMP error it would
    wait out for seconds. The question is quoted; the UDP checksum is 0 (none), as IPv4
    allows."""
    header_length = (packet[0] & 0x0F) * 4
    udp, message = packet[header_length : header_length + 8], packet[header_length + 8 :]
    question_end = 12
    while question_end < len(message) and message[question_end] != 0:
        question_end += 1 + message[question_end]
    question = message[12 : question_end + 5]
    flags = 0x8000 | (message[2] & 0x79) << 8 | 0x0080 | 5  # QR, opcode+RD kept, RA, REFUSED
    dns = message[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + question
    reply_udp = udp[2:4] + udp[0:2] + struct.pack("!HH", 8 + len(dns), 0)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(reply_udp) + len(dns), 0, 0, 64, 17, 0, packet[16:20], packet[12:16],
    )  # fmt: skip
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + reply_udp + dns


def parse(
    packet: bytes, at: float, source: str | None = None
) -> tuple[Attempt | None, bytes | None]:
    """The attempt a packet is (None for the kernel's housekeeping) and the reply to send."""
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        header_length, protocol = (packet[0] & 0x0F) * 4, packet[9]
        destination = str(ipaddress.IPv4Address(packet[16:20]))
        payload, reply = packet[header_length:], _ipv4_reply
        if protocol == _IGMP or (protocol == 1 and payload[:1] != b"\x08"):
            return None, None  # not an echo request: never answer ICMP with ICMP
    elif len(packet) >= 40 and packet[0] >> 4 == 6:
        protocol, payload, reply = packet[6], packet[40:], _ipv6_reply
        destination = str(ipaddress.IPv6Address(packet[24:40]))
        if protocol == 58 and (not payload or payload[0] != 128):  # 128: echo request
            return None, None
    else:
        return None, None
    port = (
        struct.unpack("!H", payload[2:4])[0] if protocol in (6, 17) and len(payload) >= 4 else None
    )
    name = _PROTOCOLS.get(protocol, f"ip-{protocol}")
    query = _dns_query(payload) if protocol == 17 and port == 53 else None
    if query is not None and packet[0] >> 4 == 4:
        reply = _ipv4_dns_refusal
    return Attempt(destination, port, name, at, query, source), reply(packet)


class NetworkTrap:
    """A network namespace's trap, read end (see the module doc).

    `NetworkTrap()` makes a new namespace for one bwrap exec: `netns_fd` goes to the wrapper
    (`nsenter --net=/proc/self/fd/N`). `NetworkTrap.join(pid)` traps the namespace a process
    already has (a container's). `read()` drains what the sandbox sent, answers it and returns
    the attempts; `close()` removes the trap (and its routes) when the sandbox is done.
    Both constructors switch the calling thread's namespace: run them on a worker thread.
    """

    def __init__(
        self,
        *,
        netns_fd: int | None = None,
        tun_fd: int | None = None,
        source: str | None = None,
    ) -> None:
        if netns_fd is None or tun_fd is None:
            netns_fd, tun_fd = _make_namespace()
        self.netns_fd, self.tun_fd, self.source = netns_fd, tun_fd, source

    @classmethod
    def join(cls, pid: int, source: str | None = None) -> NetworkTrap:
        """Trap the network namespace of process `pid`: its default routes go to `trap0`.
        Its attempts carry `source` (a container's service name)."""
        try:
            netns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise NetworkTrapError(f"cannot open the network namespace of {pid}: {exc}") from exc
        try:
            # IPv6 routes only where the namespace has IPv6 (an engine often turns it off).
            tun_fd = _trap_namespace(netns_fd, _JOIN_SETUP, _JOIN_SETUP_IPV6)[1]
        except BaseException:
            os.close(netns_fd)
            raise
        return cls(netns_fd=netns_fd, tun_fd=tun_fd, source=source)

    def read(self) -> list[Attempt]:
        attempts = []
        while True:
            try:
                packet = os.read(self.tun_fd, 65535)
            except BlockingIOError:
                return attempts
            attempt, reply = parse(packet, time.time(), self.source)
            if reply is not None:
                try:
                    os.write(self.tun_fd, reply)
                except OSError:
                    pass  # the answer only speeds the program's failure up
            if attempt is not None:
                attempts.append(attempt)

    def close(self) -> None:
        for fd in (self.tun_fd, self.netns_fd):
            os.close(fd)


def _make_namespace() -> tuple[int, int]:
    """A new network namespace configured as a trap; (its fd, the tun fd)."""
    return _trap_namespace(None, _SETUP, "")


def _trap_namespace(netns_fd: int | None, setup: str, setup_ipv6: str) -> tuple[int, int]:
    """Configure a trap in a new namespace (`netns_fd` None) or in the one given; returns
    (the namespace's fd, the tun fd).

    Done in the calling thread (network namespaces are per thread), which is put back in its
    own namespace before returning; run it in a worker thread, not on the event loop.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    made = tun_fd = -1
    try:
        if netns_fd is None:
            os.unshare(os.CLONE_NEWNET)
        else:
            os.setns(netns_fd, os.CLONE_NEWNET)
        try:
            if netns_fd is None:
                netns_fd = made = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            tun_fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            fcntl.ioctl(
                tun_fd, _TUNSETIFF, struct.pack("16sH", TRAP.encode(), _IFF_TUN | _IFF_NO_PI)
            )
            # Forked from this thread, so `ip` works in the namespace.
            _ip(setup)
            if setup_ipv6 and Path("/proc/sys/net/ipv6/conf/all/disable_ipv6").read_text() == "0\n":
                _ip(setup_ipv6)
        finally:
            os.setns(own, os.CLONE_NEWNET)
    except BaseException as exc:
        for fd in (tun_fd, made):
            if fd >= 0:
                os.close(fd)
        if isinstance(exc, OSError):
            raise NetworkTrapError(f"cannot set up the sandbox's network trap: {exc}") from exc
        raise
    finally:
        os.close(own)
    return netns_fd, tun_fd


def _ip(batch: str) -> None:
    done = subprocess.run(
        [IP, "-batch", "-"], input=batch, capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise NetworkTrapError(f"cannot configure {TRAP}: {done.stderr.strip()}")


def enter_command(netns_fd: int) -> list[str]:
    """The wrapper's step that joins the trap namespace (the fd is inherited)."""
    return [NSENTER, f"--net=/proc/self/fd/{netns_fd}", "--"]
