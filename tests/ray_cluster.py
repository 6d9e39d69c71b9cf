"""A real Ray cluster on this machine for the tests: a head node and more nodes, each a separate
`ray start` process tree with one CPU, its own resources, `cnnprof-kind` label, temp folder and
small object store, all inside a private network namespace that has only a loopback interface.

Why the namespace: Ray 2.x binds its servers to every interface and replaces 127.0.0.1 by the
machine's routable address; in a namespace of its own the only address there is 127.0.0.1, so
nothing of the test cluster can be reached from outside, nor does its traffic leave the loopback
interface. It needs `unshare` / `nsenter` (util-linux) and root; without them the cluster
tests are skipped (saying why). Token authentication is on (RAY_AUTH_MODE=token, a random token).

Clean-up is by namespace: every process in it was started here, so `stop()` kills exactly those
(SIGKILL; never `ray stop`, which would stop every Ray process of the machine), then checks that
none is left.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
PORT = 6379  # free: the namespace is the cluster's own
# The namespace's first process: brings its loopback interface up (SIOCGIFFLAGS, SIOCSIFFLAGS with
# IFF_UP), says so, and holds the namespace until it is killed (an hour at most).
HOLDER = """
import fcntl, socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, struct.pack("16sh14x", b"lo", 0))[:18])[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sh14x", b"lo", flags | 1))
print("up", flush=True)
time.sleep(3600)
"""


def unavailable() -> str | None:
    """Why no test cluster can be started here, or None."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install 'cnnprof[cluster]', or make install)"
    if not Path(RAY).exists():
        return f"no ray command beside {sys.executable}"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"no {tool} command (util-linux): the test cluster runs in a private network namespace"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        return "cannot create a network namespace here (needs root): " + probe.stderr.decode(errors="replace").strip()
    return None

LAN_ADDRESS = "10.200.0.1"
LAN_SETUP = ("link add cnl0 type veth peer name cnl1", f"addr add {LAN_ADDRESS}/24 dev cnl0", "link set cnl1 up",
             "link set cnl0 up", "route add default via 10.200.0.254 dev cnl0")


def lan_unavailable() -> str | None:
    """Why no test cluster with a LAN-like address can be started here, or None."""
    why = unavailable()
    if why is None and shutil.which("ip") is None:
        why = "no ip command (iproute2): the namespace's LAN-like address is made with it"
    if why is None:
        probe = subprocess.run(["unshare", "-n", "ip", "link", "add", "cnl0", "type", "veth", "peer", "name", "cnl1"],
                               capture_output=True)
        if probe.returncode != 0:
            why = "cannot make a veth pair here: " + probe.stderr.decode(errors="replace").strip()
    return why


def _ns_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


@dataclass
class Node:
    name: str
    kind: str
    temp: str
    pythonpath: str


@dataclass
class LocalCluster:
    """See the module docstring. ``start()`` the head, ``add(name, kind)`` more nodes."""

    nodes: dict[str, Node] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    holder: subprocess.Popen | None = None
    # a namespace with a LAN-like address too (LAN_ADDRESS on a veth pair, a default route through
    # it), as on a machine in a network; the nodes are then started on loopback as the README shows
    lan: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{PORT}"

    @property
    def namespace(self) -> str:
        return f"/proc/{self.holder.pid}/ns/net"

    def env(self, pythonpath: str | None = None, **extra: str) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": pythonpath or str(ROOT), "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": self.token, "RAY_USAGE_STATS_ENABLED": "0",
               # a dead node is noticed in seconds, not the default half minute
               "RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
               "RAY_health_check_failure_threshold": "3", "RAY_health_check_initial_delay_ms": "1000"}
        return {**env, **extra}

    def inside(self, *args: str) -> list[str]:
        """A command line that runs in the cluster's namespace."""
        return ["nsenter", f"--net={self.namespace}", "--", *args]

    def start(self, kind: str = "cpu-a") -> "LocalCluster":
        self.holder = subprocess.Popen(["unshare", "-n", sys.executable, "-c", HOLDER], stdout=subprocess.PIPE,
                                       text=True, start_new_session=True)
        if self.holder.stdout.readline().strip() != "up":
            raise RuntimeError("could not bring up the loopback interface of the test cluster's namespace")
        if self.lan:
            for step in LAN_SETUP:
                subprocess.run(self.inside("ip", *step.split()), check=True, capture_output=True, timeout=30)
        self.add("head", kind, head=True)
        return self

    def add(self, name: str, kind: str, *, head: bool = False, pythonpath: str | None = None,
            resources: dict | None = None) -> Node:
        temp = tempfile.mkdtemp(prefix=f"cnr-{name}-", dir="/tmp")  # short: Ray's socket paths must fit
        node = Node(name, kind, temp, pythonpath or str(ROOT))
        args = [RAY, "start", "--num-cpus", "1", "--resources", json.dumps(resources or {"cnnprof_slot": 1}),
                "--labels", f"cnnprof-kind={kind}", "--object-store-memory", str(80 * 2**20), "--temp-dir", temp,
                "--disable-usage-stats"]
        args += ["--head", "--port", str(PORT), "--include-dashboard=false"] if head else ["--address", self.address]
        extra = {}
        if self.lan:  # keep Ray from moving the node to the LAN address (and every interface)
            args += ["--node-ip-address", "127.0.0.1"]
            extra = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        result = subprocess.run(self.inside(*args), env=self.env(node.pythonpath, **extra), capture_output=True,
                                text=True, timeout=180, start_new_session=True)
        if result.returncode != 0:
            raise RuntimeError(f"ray start ({name}) failed: {result.stderr[-2000:]}")
        self.nodes[name] = node
        return node

    def processes(self, needle: str | None = None) -> list[int]:
        """Pids of processes in the namespace (whose command line holds ``needle``, when given)."""
        if self.holder is None:
            return []
        ns = _ns_of(self.holder.pid)
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.holder.pid:
                continue
            if ns is None or _ns_of(int(entry)) != ns:
                continue
            if needle is not None:
                try:
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if needle not in cmd:
                    continue
            found.append(int(entry))
        return found

    def descendants(self, pids: list[int]) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        out, todo = [], list(pids)
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += children.get(pid, [])
        return out

    def node_id(self, name: str) -> str:
        """Ray's id of node ``name`` (from its raylet's command line)."""
        for pid in self.processes(self.nodes[name].temp):
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if args and args[0].endswith("raylet"):
                for arg in args:
                    if arg.startswith(("--node_id=", "--node-id=")):
                        return arg.split("=", 1)[1]
        raise LookupError(f"no raylet of node {name}")

    def kill_node(self, name: str) -> list[int]:
        """SIGKILL every process of node ``name`` (its raylet, agents, Ray workers and what they
        started): the node dies as a machine that loses power would, for the others."""
        pids = self.descendants(self.processes(self.nodes[name].temp))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def stop(self) -> None:
        """Kill every process in the namespace, then the namespace's holder; wait until none is left."""
        if self.holder is None:
            return
        deadline = time.time() + 30
        while True:
            left = self.processes()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not left or time.time() > deadline:
                break
            time.sleep(0.2)
        self.holder.kill()
        self.holder.wait(timeout=10)
        for node in self.nodes.values():
            shutil.rmtree(node.temp, ignore_errors=True)
        left = self.processes()
        self.holder = None
        if left:
            raise RuntimeError(f"processes of the test cluster still running: {left}")

    def cnnprof(self, *args: str, cwd: Path, env: dict | None = None, **popen) -> subprocess.Popen:
        """``cnnprof ARGS`` as a driver inside the namespace (a process of its own)."""
        return subprocess.Popen(self.inside(sys.executable, "-c", "from cnnprof.cli import main; main()", *args),
                                cwd=cwd, env={**self.env(), **(env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **popen)

    def run(self, *args: str, cwd: Path, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
        proc = self.cnnprof(*args, cwd=cwd, **kw)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"cnnprof {' '.join(args)} ran past {timeout} s: {err[-3000:]}") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def mismatched_copy(folder: Path, version: str = "0.0.0+other") -> Path:
    """A copy of this cnnprof whose version says ``version`` (and which is no git checkout): the
    'other cnnprof' a refused node runs. Returns the folder to put on PYTHONPATH."""
    target = folder / "cnnprof"
    shutil.copytree(ROOT / "cnnprof", target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "version.py").write_text(f'__version__ = "{version}"\n')
    return folder
