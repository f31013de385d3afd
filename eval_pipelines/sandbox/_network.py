"""Network attempts seen at the kernel boundary: a trap network namespace per exec.

Each exec gets a network namespace made here, by root, and joined by bubblewrap
(`nsenter --net` before it, `--share-net` in it): loopback up, and a tun device `trap0`
holding the IPv4 and IPv6 default routes. Whatever the sandboxed code sends off-host
(a TCP SYN, a UDP datagram such as a DNS query, an ICMP echo) is routed into `trap0`,
whose other end is a file descriptor of this process: the packet is read here and goes
nowhere else. It is reported (destination, port, protocol, time) and answered with an ICMP
"administratively prohibited", so the sandboxed program fails at once ("No route to host")
instead of hanging until its own timeout.

The namespace belongs to the host's user namespace: code in the sandbox has no capability
over it, so it cannot reconfigure `trap0`, change routes or open packet sockets. It sees no
other interface of the host, and abstract unix sockets stay per namespace, as before.
What the watch does not see is what never becomes a packet: loopback traffic inside the
sandbox, and attempts refused before routing (unix sockets to host paths are invisible).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import struct
import subprocess
import time
from dataclasses import dataclass

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
_PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp"}
# The kernel's own traffic on an interface coming up, not the sandbox's: IPv6 neighbour
# discovery and multicast listener reports, IPv4 IGMP.
_ICMPV6_HOUSEKEEPING = {130, 131, 132, 133, 134, 135, 136, 137, 143}
_IGMP = 2


class NetworkTrapError(RuntimeError):
    """The trap namespace could not be made: the exec must not run without it."""


@dataclass(frozen=True)
class Attempt:
    """One packet the sandbox tried to send off-host."""

    destination: str
    port: int | None
    protocol: str
    at: float

    def details(self) -> dict[str, object]:
        return {"destination": self.destination, "port": self.port, "protocol": self.protocol}


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


def parse(packet: bytes, at: float) -> tuple[Attempt | None, bytes | None]:
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
    return Attempt(destination, port, name, at), reply(packet)


class NetworkTrap:
    """One exec's network namespace and the read end of its trap (see the module doc).

    `netns_fd` goes to the wrapper (`nsenter --net=/proc/self/fd/N`); `read()` drains what
    the sandbox sent, answers it and returns the attempts. `close()` when the exec is over.
    """

    def __init__(self) -> None:
        self.netns_fd, self.tun_fd = _make_namespace()

    def read(self) -> list[Attempt]:
        attempts = []
        while True:
            try:
                packet = os.read(self.tun_fd, 65535)
            except BlockingIOError:
                return attempts
            attempt, reply = parse(packet, time.time())
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
    """A new network namespace configured as a trap; (its fd, the tun fd).

    Made in the calling thread (network namespaces are per thread), which is put back in its
    own namespace before returning; run it in a worker thread, not on the event loop.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    netns_fd = tun_fd = -1
    try:
        os.unshare(os.CLONE_NEWNET)
        try:
            netns_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            tun_fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            fcntl.ioctl(
                tun_fd, _TUNSETIFF, struct.pack("16sH", TRAP.encode(), _IFF_TUN | _IFF_NO_PI)
            )
            # Forked from this thread, so `ip` works in the new namespace.
            setup = subprocess.run(
                [IP, "-batch", "-"], input=_SETUP, capture_output=True, text=True, timeout=30
            )
            if setup.returncode != 0:
                raise NetworkTrapError(f"cannot configure {TRAP}: {setup.stderr.strip()}")
        finally:
            os.setns(own, os.CLONE_NEWNET)
    except BaseException as exc:
        for fd in (tun_fd, netns_fd):
            if fd >= 0:
                os.close(fd)
        if isinstance(exc, OSError):
            raise NetworkTrapError(f"cannot make the sandbox's network namespace: {exc}") from exc
        raise
    finally:
        os.close(own)
    return netns_fd, tun_fd


def enter_command(netns_fd: int) -> list[str]:
    """The wrapper's step that joins the trap namespace (the fd is inherited)."""
    return [NSENTER, f"--net=/proc/self/fd/{netns_fd}", "--"]
