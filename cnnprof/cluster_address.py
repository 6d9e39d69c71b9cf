"""Where a ``--cluster`` address points, whether a Ray cluster answers there, and which of this
machine's interfaces reaches it: everything checked before Ray is asked to join (stdlib only).

* cnnprof never starts a Ray head: ``local`` (which ``ray.init`` reads as "start one") is refused,
  and so is ``auto`` while ``RAY_ADDRESS`` says ``local``.
* Ray's own join never gives up (it retries an address with nothing behind it for as long as the
  process lives, printing nothing). So the address is first probed here, with a timeout: a TCP
  connection, then the start of an HTTP/2 exchange, to which a Ray head (a gRPC server) answers
  with a SETTINGS frame; a closed port, a host that does not answer and a server of another kind
  (a web server) are one line each, within seconds.
* The driver joins on the interface that reaches the cluster (the source address of the route to
  it). Ray replaces a loopback address by the machine's LAN address, and its driver then listens
  on every interface; for a cluster reached over loopback it is kept on loopback instead.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass

from cnnprof.errors import UsageError, shorten

PROBE_TIMEOUT_S = 5.0  # each step of the probe: connecting, and the answer
RAY_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray keeps a loopback address as it is
FORMS = "auto, HOST:PORT or ray://HOST:PORT"
# the HTTP/2 client preface and an empty SETTINGS frame (RFC 9113, 3.4 and 6.5)
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
HTTP2_SETTINGS = 0x04


class ClusterError(UsageError):
    """The cluster cannot be used as asked: one line, exit 2."""


@dataclass(frozen=True)
class Target:
    """An address given to ``--cluster``: what ``ray.init`` is given (``text``) and, where it is
    known before joining, the host and port it leads to."""

    text: str
    host: str | None = None
    port: int | None = None
    client: bool = False  # ray://: Ray Client, which starts no Ray process on this machine

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def split_host_port(text: str) -> tuple[str, int] | None:
    """("host", port) of ``host:port`` or ``[v6]:port``, or None."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host, int(port)) if host and "/" not in host else None


def parse(address: str | None, environ=None) -> Target:
    """The target of ``address`` (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``); one line when it
    is none of these, or would start a Ray head here."""
    environ = os.environ if environ is None else environ
    text = (address or "").strip()
    if not text:
        raise ClusterError(f"--cluster needs an address: {FORMS}")
    if text.lower() == "local":
        raise ClusterError("--cluster local would start a Ray head on this machine, and cnnprof starts none: give "
                           f"the address of a running cluster ({FORMS}), or measure here without --cluster (a head "
                           "on loopback: README, \"Measuring on a Ray cluster\")")
    if text == "auto":
        named = environ.get("RAY_ADDRESS", "").strip()
        if named.lower() == "local":
            raise ClusterError("--cluster auto: RAY_ADDRESS=local would start a Ray head on this machine, and "
                               "cnnprof starts none: set RAY_ADDRESS to a running cluster's HOST:PORT")
        if not named:
            return Target(text)  # Ray finds the cluster this machine belongs to (its session files)
        inner = parse(named, {})
        return Target(text, inner.host, inner.port, inner.client)
    client = text.startswith("ray://")
    if "://" in text and not client:
        return Target(text)  # another of Ray's schemes: given to Ray as it is
    parsed = split_host_port(text[len("ray://"):] if client else text)
    if parsed is None:
        raise ClusterError(f"--cluster {shorten(text, 60)!r}: not an address; give {FORMS}")
    return Target(text, parsed[0], parsed[1], client)


def probe(target: Target, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """One line unless a gRPC server (a Ray head, or Ray Client's server) answers at ``target``
    within ``timeout_s`` for each step. A target whose host is not known yet is not probed."""
    if target.host is None:
        return
    where = target.where
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout_s)
    except ConnectionRefusedError:
        raise ClusterError(f"no Ray cluster at {where}: nothing listens there (connection refused)") from None
    except TimeoutError:
        raise ClusterError(f"no Ray cluster at {where}: no answer in {timeout_s:.0f} s") from None
    except OSError as exc:
        raise ClusterError(f"no Ray cluster at {where}: {exc.strerror or exc}") from None
    with sock:
        header = b""
        deadline = time.monotonic() + timeout_s
        try:
            sock.sendall(HTTP2_PREFACE)
            while len(header) < 9:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = sock.recv(9 - len(header))
                if not chunk:
                    break
                header += chunk
        except TimeoutError:
            raise ClusterError(f"no Ray cluster at {where}: it accepts connections but says nothing in "
                               f"{timeout_s:.0f} s") from None
        except OSError as exc:
            raise ClusterError(f"no Ray cluster at {where}: {exc.strerror or exc}") from None
    if len(header) < 9 or header[3] != HTTP2_SETTINGS:
        what = "closed the connection" if not header else "answers, but not as a Ray cluster does (gRPC)"
        raise ClusterError(f"no Ray cluster at {where}: it {what}")


def driver_address(target: Target) -> str | None:
    """This machine's address on the route to ``target`` (what the driver binds to), or None when
    the target is not known yet or the route cannot be found."""
    if target.host is None:
        return None
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)
    except OSError:
        return None
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as udp:
                udp.connect(sockaddr)  # no packet is sent: the kernel picks the route and source
                return udp.getsockname()[0]
        except OSError:
            continue
    return None


def is_loopback(ip: str | None) -> bool:
    try:
        return ip is not None and ipaddress.ip_address(ip.split("%")[0]).is_loopback
    except ValueError:
        return False
