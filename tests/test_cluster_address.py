"""`--cluster` starts no Ray head, gives up on an address with no Ray behind it, and keeps the
driver on the interface that reaches the cluster (cnnprof/cluster_address.py, cluster.connect).

The fast tests need no cluster: the address is refused or probed before Ray is asked to join
(a closed port, a plain web server and a silent listener, each on 127.0.0.1 on a free port of
its own). The cluster-marked one starts a head in a private network namespace that also has a
LAN-like address, and lists the namespace's listening sockets with `ss` while a sweep runs
there, and after `--cluster local`: every port is on loopback."""

import contextlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import ray_cluster  # noqa: E402

from cnnprof import cluster_address as ca  # noqa: E402

try:
    import ray  # noqa: F401

    NO_RAY = None
except ImportError:
    NO_RAY = "ray is not installed"
HANG_GUARD_S = 30  # a command that has not ended by then hangs


def _cnnprof(*args: str, timeout: float = HANG_GUARD_S) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ray_cluster.ROOT)}
    env.pop("RAY_ADDRESS", None)
    try:
        return subprocess.run([sys.executable, "-c", "from cnnprof.cli import main; main()", *args],
                              capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"cnnprof {' '.join(args)} did not end within {timeout} s: {exc.stderr!r}") from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("cnnprof: error: "), result.stderr[-2000:]
    return result.stderr


# -- starting nothing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("address,environ", [("local", {}), (" LOCAL ", {}), ("auto", {"RAY_ADDRESS": "local"})])
def test_an_address_that_would_start_a_head_is_refused(address, environ):
    with pytest.raises(ca.ClusterError, match="would start a Ray head on this machine, and cnnprof starts none"):
        ca.parse(address, environ)


def test_the_addresses_that_join_a_running_cluster_are_read():
    assert ca.parse("127.0.0.1:6379", {}) == ca.Target("127.0.0.1:6379", "127.0.0.1", 6379)
    assert ca.parse("ray://head:10001", {}) == ca.Target("ray://head:10001", "head", 10001, client=True)
    assert ca.parse("[::1]:6379", {}).where == "[::1]:6379"
    assert ca.parse("auto", {}) == ca.Target("auto")  # Ray finds it: nothing known to probe
    assert ca.parse("auto", {"RAY_ADDRESS": "10.0.0.5:6379"}) == ca.Target("auto", "10.0.0.5", 6379)
    for bad in ("", "head", "head:0", "head:99999", ":6379", "ray://head"):
        with pytest.raises(ca.ClusterError):
            ca.parse(bad, {})


def test_sweep_and_lut_build_with_cluster_local_start_nothing(cli, monkeypatch):
    called = []
    fake = types.SimpleNamespace(__version__="2.60.0", init=lambda *a, **k: called.append((a, k)))
    monkeypatch.setitem(sys.modules, "ray", fake)  # whatever Ray would be asked, it is recorded here
    result = cli("sweep", "mobilenetv3_small", "--no-timing", "--cluster", "local")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "--cluster local would start a Ray head" in result.stderr
    result = cli("lut", "build", "--cluster", "local", "--on", "cpu-a")
    assert result.exit_code == 2 and "--cluster local would start a Ray head" in result.stderr
    assert called == []


# -- an address with no Ray behind it ----------------------------------------------------------------
@pytest.mark.skipif(NO_RAY is not None, reason=str(NO_RAY))
def test_a_closed_port_is_one_line_and_exit_2():
    port = _free_port()  # free, and closed again: nothing listens there
    line = _one_line(_cnnprof("sweep", "mobilenetv3_small", "--no-timing", "--cluster", f"127.0.0.1:{port}"))
    assert f"no Ray cluster at 127.0.0.1:{port}: nothing listens there (connection refused)" in line


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.skipif(NO_RAY is not None, reason=str(NO_RAY))
def test_a_web_server_is_one_line_and_exit_2(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        line = _one_line(_cnnprof("lut", "build", "--cluster", f"127.0.0.1:{port}", "--on", "cpu-a",
                                  "-o", str(tmp_path / "t.json")))
        assert f"no Ray cluster at 127.0.0.1:{port}: it answers, but not as a Ray cluster does (gRPC)" in line
        line = _one_line(_cnnprof("sweep", "mobilenetv3_small", "--no-timing", "--cluster", f"ray://127.0.0.1:{port}"))
        assert f"no Ray cluster at 127.0.0.1:{port}" in line
    finally:
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "t.json").exists()


def test_a_listener_that_says_nothing_is_given_up_on():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts (in the kernel) and never answers
        port = listener.getsockname()[1]
        raised = []

        def probe():
            try:
                ca.probe(ca.parse(f"127.0.0.1:{port}", {}), timeout_s=1.0)
            except ca.ClusterError as exc:
                raised.append(str(exc))

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(HANG_GUARD_S)
        assert not thread.is_alive(), "the probe hangs"
    assert raised == [f"no Ray cluster at 127.0.0.1:{port}: it accepts connections but says nothing in 1 s"]


def test_a_join_that_hangs_anyway_is_abandoned_with_one_line():
    code = ("import time\nfrom cnnprof.cluster import _abandoned_after\n"
            "with _abandoned_after(0.5, 'cannot join: no answer'):\n    time.sleep(60)\n")
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD_S,
                                env={**os.environ, "PYTHONPATH": str(ray_cluster.ROOT)})
    except subprocess.TimeoutExpired:
        raise AssertionError("the block was not abandoned") from None
    assert _one_line(result) == "cnnprof: error: cannot join: no answer\n"


def test_the_driver_binds_to_the_interface_that_reaches_the_cluster():
    assert ca.driver_address(ca.parse("127.0.0.1:6379", {})) == "127.0.0.1"
    assert ca.is_loopback("127.0.0.1") and ca.is_loopback("::1") and ca.is_loopback("127.0.1.1")
    assert not ca.is_loopback("10.200.0.1") and not ca.is_loopback(None) and not ca.is_loopback("head")
    assert ca.driver_address(ca.parse("auto", {})) is None


# -- in a namespace with a LAN-like address: every port on loopback --------------------------------------
LAN_WHY_NOT = ray_cluster.lan_unavailable()
SNAPSHOT = '''
import subprocess
import torch


def snap(path=""):
    """A tiny model whose factory lists the namespace's listening sockets while the sweep runs."""
    with open(path, "w") as f:
        f.write(subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
'''
LOOPBACK = ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")


def _listening(cluster) -> list[str]:
    out = subprocess.run(cluster.inside("ss", "-ltnpH"), capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines() if ln.strip()]


def _beyond_loopback(lines: list[str]) -> list[str]:
    return [ln for ln in lines if not ln.split()[3].startswith(LOOPBACK)]


@pytest.fixture
def lan_cluster():
    if LAN_WHY_NOT is not None:
        pytest.skip(f"no test cluster with a LAN address: {LAN_WHY_NOT}")
    cluster = ray_cluster.LocalCluster(lan=True)
    try:
        cluster.start("cpu-a")
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()


@pytest.mark.slow
@pytest.mark.cluster
def test_no_port_of_a_sweep_on_a_cluster_listens_beyond_loopback(lan_cluster, tmp_path):
    cluster = lan_cluster
    route = subprocess.run(cluster.inside("ip", "route", "get", "192.0.2.1"), capture_output=True, text=True)
    assert f"src {ray_cluster.LAN_ADDRESS}" in route.stdout  # Ray would take this address for the machine's
    before = _listening(cluster)
    assert before and not _beyond_loopback(before), before  # the head, started as the README shows
    (tmp_path / "snapnet.py").write_text(SNAPSHOT)
    seen = tmp_path / "listening.txt"
    driver = cluster.cnnprof("sweep", f"{tmp_path / 'snapnet.py'}:snap(path={str(seen)!r})", "--no-timing",
                             "--input", "3x8x8", "--cluster", cluster.address, "--db", str(tmp_path / "x.db"),
                             cwd=tmp_path)
    try:
        _, err = driver.communicate(timeout=240)
    finally:
        driver.kill()
    assert driver.returncode == 0, err[-3000:]
    during = [ln for ln in seen.read_text().splitlines() if ln.strip()]
    assert any(f"pid={driver.pid}," in ln for ln in during), during  # the driver's own port is listed
    assert not _beyond_loopback(during), during
    # `--cluster local` there is refused, and starts nothing
    result = cluster.run("sweep", "mobilenetv3_small", "--no-timing", "--cluster", "local", cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "--cluster local would start a Ray head" in result.stderr, result.stderr
    assert not _beyond_loopback(_listening(cluster))
