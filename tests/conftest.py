"""Shared fixtures: a real annalsd process and gRPC stubs generated from our proto.

Environment:
  ANNALS_BIN  directory with annalsd and annals (default: build/bin)
  ANNALS_PY   directory with the generated Python stubs (default: build/py)
  ANNALS_SANITIZED=1 when the binaries are ASan builds (slower: longer waits)
  ANNALS_MODE=distributed to run every Server as the distributed deployment
    (`annalsd all` on the engines of `make services-up`, docs/distributed.md) instead
    of the embedded `annalsd serve --data DIR`. Each Server's data directory stands
    for a namespace of its own (topics, keyspace, schema: a fresh deployment, as a
    fresh directory is a fresh embedded store); a restart on the same directory is a
    restart of the same deployment.
  ANNALS_KEEP_NAMESPACES=1 (distributed only) keeps the namespaces the session made; by
    default they are dropped when the session ends (annals-dist drop): left behind, each
    keyspace's ~10 tables stay in Cassandra's heap (table metrics, memtables), and after a
    few suites its 1 GB heap spends seconds in every few in full GCs.
  ANNALS_TOPOLOGY=scaled (distributed only): each Server is two API servers, two
    sequencers and two projectors, six processes; clients spread their calls over both
    API servers (round robin per call), so a write on one is read on the other.
Tests that check what only one mode has (files of the data directory, disk-full
emulation, sealing) carry @pytest.mark.embedded_only and are skipped in the other.
"""
import os
import signal
import socket
import subprocess
import sys
import hashlib
import tempfile
import time

import grpc
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("ANNALS_BIN", os.path.join(ROOT, "build", "bin"))
PY = os.environ.get("ANNALS_PY", os.path.join(ROOT, "build", "py"))
SANITIZED = os.environ.get("ANNALS_SANITIZED") == "1"
MODE = os.environ.get("ANNALS_MODE", "embedded")
DISTRIBUTED = MODE == "distributed"
SESSION = os.urandom(4).hex()
# Flags that tune the embedded store only; a distributed deployment has no data directory.
SCALED = DISTRIBUTED and os.environ.get("ANNALS_TOPOLOGY") == "scaled"
EMBEDDED_ONLY = {"--seal-idle-ms": 1, "--blocks": 1, "--durability": 1, "--data": 1}
sys.path.insert(0, PY)

from annals.v1 import annals_pb2 as pb  # noqa: E402
from annals.v1 import annals_pb2_grpc as pbg  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "embedded_only(reason): checks what only the embedded mode has")


# Namespaces this session's servers used (dropped at the end, see ANNALS_KEEP_NAMESPACES).
NAMESPACES = set()


def pytest_sessionfinish(session, exitstatus):
    if not DISTRIBUTED or not NAMESPACES or os.environ.get("ANNALS_KEEP_NAMESPACES") == "1":
        return
    dist = os.path.join(BIN, "annals-dist")
    if not os.path.exists(dist):
        return
    names = sorted(NAMESPACES)
    for i in range(0, len(names), 20):
        subprocess.run([dist, "drop", "--ns", ",".join(names[i:i + 20])],
                       capture_output=True, timeout=600)


def pytest_collection_modifyitems(config, items):
    if not DISTRIBUTED:
        return
    for item in items:
        m = item.get_closest_marker("embedded_only")
        if m:
            item.add_marker(pytest.mark.skip(reason="embedded mode only: " + (
                m.args[0] if m.args else "")))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One annalsd process on one data directory; restartable (kill -9 included)."""

    def __init__(self, data_dir, port=None, extra_args=(), log_path=None, http=False):
        self.data = data_dir
        self.port = port or free_port()
        self.addr = f"127.0.0.1:{self.port}"
        # http=True: the HTTP port too (--http, docs/operations.md), on the API server (the
        # first one in the scaled topology); its address is http_addr.
        self.http_port = free_port() if http else None
        self.http_addr = f"127.0.0.1:{self.http_port}" if http else None
        self.extra = list(extra_args)
        self.proc = None
        self.others = []  # scaled topology: the other five processes
        self.port2 = free_port() if SCALED else None
        self.env = None  # the environment of the next start (None: ours)
        self.log_path = log_path or os.path.join(data_dir, "annalsd.out")

    def where(self):
        """The flags that point an annalsd admin command at this server's store."""
        if DISTRIBUTED:
            return ["--distributed", "--namespace", self.namespace()]
        return ["--data", self.data]

    def admin(self, *args, check=True):
        """Runs `annalsd ARGS... <where>`; returns the CompletedProcess."""
        return subprocess.run(
            [os.path.join(BIN, "annalsd")] + list(args) + self.where(),
            check=check, capture_output=True, text=True, timeout=120)

    def tenant(self, name):
        """Creates a tenant with `annalsd tenant create` and returns its (admin) API key."""
        return self.admin("tenant", "create", name).stdout.strip().splitlines()[-1]

    def key(self, tenant, *roles, name=None, expires=None):
        """Creates a key with `annalsd key create TENANT --role R...`; returns (key, key_id)."""
        args = ["key", "create", tenant]
        for r in roles:
            args += ["--role", r]
        if name is not None:
            args += ["--name", name]
        if expires is not None:
            args += ["--expires", expires]
        lines = self.admin(*args).stdout.strip().splitlines()
        key_id = lines[0].split()[1]  # "key <id> named ..."
        return lines[-1], key_id

    def keys(self, tenant):
        """`annalsd key list TENANT` as a list of dicts (id, name, roles, created, expires,
        last_used, state), and the raw output."""
        out = self.admin("key", "list", tenant).stdout
        lines = out.strip().splitlines()
        head = lines[0].split("\t")
        return [dict(zip(head, line.split("\t"))) for line in lines[1:]], out

    def revoke_key(self, key_id, check=True):
        """`annalsd key revoke KEY_ID`."""
        return self.admin("key", "revoke", key_id, check=check)

    def namespace(self):
        """The distributed deployment this server's data directory stands for."""
        real = os.path.realpath(self.data).encode()
        ns = "t" + SESSION + hashlib.sha256(real).hexdigest()[:10]
        NAMESPACES.add(ns)
        return ns

    def command(self):
        """The command line that starts this server."""
        http = ["--http", self.http_addr] if self.http_addr else []
        if not DISTRIBUTED:
            return [os.path.join(BIN, "annalsd"), "serve", "--data", self.data,
                    "--listen", self.addr] + http + self.extra
        extra, skip = [], 0
        for a in self.extra:
            if skip:
                skip -= 1
            elif a in EMBEDDED_ONLY:
                skip = EMBEDDED_ONLY[a]
            else:
                extra.append(a)
        ns = ["--namespace", self.namespace()]
        if not SCALED:
            return [os.path.join(BIN, "annalsd"), "all"] + ns + ["--listen", self.addr] + \
                http + extra
        return [os.path.join(BIN, "annalsd"), "serve", "--distributed"] + ns + [
            "--instance", "api-1", "--listen", self.addr] + http + extra

    def role_commands(self):
        """Scaled topology: the five other processes, with the suffix of their logs."""
        if not SCALED:
            return []
        a = os.path.join(BIN, "annalsd")
        ns = ["--namespace", self.namespace()]
        return [([a, "serve", "--distributed"] + ns + [
                    "--instance", "api-2", "--listen", f"127.0.0.1:{self.port2}"], "api-2")] + [
                ([a, role] + ns + ["--instance", f"{name}-{i}"], f"{name}-{i}")
                for role, name in (("sequence", "seq"), ("project", "proj")) for i in (1, 2)]

    def start(self, timeout=30):
        os.makedirs(self.data, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        self.others = []
        for cmd, suffix in self.role_commands():
            with open(self.log_path + "." + suffix, "ab") as log:
                self.others.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                    env=self.env))
        if DISTRIBUTED:  # the first start creates topics, keyspace and schema
            timeout = max(timeout, 180)
        deadline = time.time() + (timeout * 3 if SANITIZED else timeout)
        waiting = [self.port] + ([self.port2] if SCALED else []) + \
            ([self.http_port] if self.http_port else [])
        while time.time() < deadline:
            for p in [self.proc] + self.others:
                if p.poll() is not None:
                    raise RuntimeError(f"annalsd exited with {p.returncode}: "
                                       + open(self.log_path, errors="replace").read()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.2):
                    waiting.pop(0)
                    if not waiting:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("annalsd did not start listening")

    def kill(self, sig=signal.SIGKILL):
        """Signals every process of the server; the exit code (the worst one when scaled)."""
        procs = ([self.proc] if self.proc else []) + self.others
        # API servers first (their in-flight calls need the roles to finish), then the roles,
        # as an operator drains a deployment; kill -9 takes everything at once.
        waves = [procs] if sig == signal.SIGKILL else [procs[:2], procs[2:]]
        for wave in waves:
            for p in wave:
                if p.poll() is None:
                    p.send_signal(sig)
            for p in wave:
                p.wait(timeout=90)
        rc = self.proc.returncode if self.proc else None
        if rc == 0:
            rc = next((p.returncode for p in self.others if p.returncode != 0), 0)
        self.proc = None
        self.others = []
        return rc

    def stop(self):
        """SIGTERM, as an operator would; returns the exit code."""
        return self.kill(signal.SIGTERM)

    def channel(self):
        # Each channel has its own connections, as a new client process would: grpc's shared
        # subchannel pool would hand a channel opened after a restart the connection of an
        # older channel still waiting out its reconnect backoff, and fail its first call.
        own = [("grpc.use_local_subchannel_pool", 1)]
        if SCALED:  # every call to the next API server in turn
            return grpc.insecure_channel(
                f"ipv4:127.0.0.1:{self.port},127.0.0.1:{self.port2}",
                options=own + [("grpc.lb_policy_name", "round_robin")])
        return grpc.insecure_channel(self.addr, options=own)


class Client:
    """Stubs bound to one API key."""

    def __init__(self, server, key):
        self.channel = server.channel()
        self.key = key
        self.md = (("authorization", f"Bearer {key}"),)
        self.cmd = pbg.LoggingCommandServiceStub(self.channel)
        self.query = pbg.LoggingQueryServiceStub(self.channel)

    def call(self, stub_method, request, **kw):
        kw.setdefault("metadata", self.md)
        kw.setdefault("timeout", 60)
        return stub_method(request, **kw)

    def close(self):
        self.channel.close()


def _keep_log(s):
    """Copies a server's output beside the suite when ANNALS_LOG_DIR is set (CI post-mortems)."""
    out = os.environ.get("ANNALS_LOG_DIR")
    if out and os.path.exists(s.log_path):
        os.makedirs(out, exist_ok=True)
        dest = os.path.join(out, f"annalsd-{os.getpid()}-{s.port}.out")
        with open(s.log_path, "rb") as src, open(dest, "wb") as dst:
            dst.write(src.read())


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory(prefix="annals-test-") as d:
        s = Server(d).start()
        try:
            yield s
            died = s.proc.poll() if s.proc else None
            assert died is None, f"annalsd died during the tests (exit {died}): " + \
                open(s.log_path, errors="replace").read()[-3000:]
            rc = s.stop()
            assert rc == 0, "annalsd did not exit cleanly on SIGTERM: " + \
                open(s.log_path, errors="replace").read()[-3000:]
        finally:
            _keep_log(s)


@pytest.fixture(scope="module")
def client(server):
    c = Client(server, server.tenant("tenant-a"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def other_client(server):
    c = Client(server, server.tenant("tenant-b"))
    yield c
    c.close()


@pytest.fixture
def log(client):
    """A fresh, empty log of tenant-a; returns its id."""
    r = client.call(client.cmd.CreateLog, pb.CreateLogRequest(labels={"test": "yes"}))
    return r.log.id


@pytest.fixture(autouse=True)
def _server_alive(request):
    """Blames a server crash on the test during which it happened (not on every later test):
    fails that test with the server's last output, then restarts the server on the same
    data directory so the rest of the module still runs."""
    yield
    if "server" not in request.fixturenames:
        return
    s = request.getfixturevalue("server")
    if s.proc is None or s.proc.poll() is None:
        return
    rc = s.proc.returncode
    tail = open(s.log_path, errors="replace").read()[-4000:]
    _keep_log(s)
    s.proc = None
    s.start()
    pytest.fail(f"annalsd died during this test (exit {rc}); its output ends with:\n{tail}")
