"""Faults of the distributed mode (ANNALS_MODE=distributed; `make test-faults-distributed`).

One deployment in a namespace of its own, in the scaled topology: two API servers, two
sequencers, two projectors, each its own `build/bin/annalsd-faults` process (the roles'
fault points live: src/common/fault.h, docs/distributed.md "Fault points"). Under load
(writers at DURABLE, SEQUENCED and QUERYABLE, a revoker, a tail follower per log:
tests/dist_invariants.py) each test breaks something, repairs it, and checks that nothing
acknowledged was lost, nothing is there twice, ids are dense and in request order,
revocations hold and the read model converges (dist_invariants.check_converged):

  - test_fault_point: a sequencer or projector killed at each of its fault points
    (ANNALS_FAULT=<point>), then started again;
  - test_random_kills: kill -9 of random roles at random moments, several rounds;
  - test_zombie_sequencer: a sequencer frozen (SIGSTOP, by ANNALS_FAULT=<point>:1:stop)
    after writing its rows / after its head commit, until the other one took its partitions
    (session timeout 10 s), then SIGCONT: it must be fenced (Cassandra's range_id, Kafka's
    group generation) and write nothing that counts;
  - test_engine_restart: kill -9 of Kafka, Cassandra, PostgreSQL (the shared engines of
    `make services-up`, restarted by deploy/services-up.sh at once) during load.

ANNALS_FAULTS_SEED=s repeats the random choices; ANNALS_FAULTS_ROUNDS=n sets the rounds of
random kills (6); ANNALS_FAULTS_ENGINES=0 skips the engine restarts; ANNALS_LOG_DIR=dir
keeps the roles' output.
"""
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

import grpc
import pytest

from conftest import BIN, DISTRIBUTED, Client, free_port
import dist_invariants as inv

pytestmark = pytest.mark.skipif(not DISTRIBUTED, reason="ANNALS_MODE=distributed only")

FAULTS_BIN = os.path.join(BIN, "annalsd-faults")
SEED = int(os.environ.get("ANNALS_FAULTS_SEED", str(int(time.time()))))
ROUNDS = int(os.environ.get("ANNALS_FAULTS_ROUNDS", "6"))
ENGINES = os.environ.get("ANNALS_FAULTS_ENGINES", "1") != "0"
# The engines' scripts and state: the checkout that ran `make services-up`.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY_ROOT = os.environ.get("ANNALS_DEPLOY_ROOT", ROOT)
SERVICES = os.environ.get("ANN_SERVICES", os.path.join(DEPLOY_ROOT, ".services"))
LOGS = 8
ROLES = ["api-1", "api-2", "seq-1", "seq-2", "proj-1", "proj-2"]


class Cluster:
    """The six processes of one deployment; each can be killed, frozen, restarted alone."""

    def __init__(self, workdir):
        self.dir = workdir
        self.ns = "f" + os.urandom(5).hex()
        self.ports = [free_port(), free_port()]
        self.procs = {}
        self.faults = {}  # name -> the ANNALS_FAULT of its current process

    def command(self, name):
        ns = ["--namespace", self.ns]
        if name.startswith("api-"):
            port = self.ports[int(name[-1]) - 1]
            return [FAULTS_BIN, "serve", "--distributed"] + ns + [
                "--instance", name, "--listen", f"127.0.0.1:{port}"]
        role = "sequence" if name.startswith("seq-") else "project"
        return [FAULTS_BIN, role] + ns + ["--instance", name]

    def log_path(self, name):
        return os.path.join(self.dir, name + ".out")

    def log(self, name):
        with open(self.log_path(name), errors="replace") as f:
            return f.read()

    def start(self, name, fault=None):
        assert name not in self.procs or self.procs[name].poll() is not None
        env = dict(os.environ)
        env.pop("ANNALS_FAULT", None)
        if fault:
            env["ANNALS_FAULT"] = fault
        with open(self.log_path(name), "ab") as out:
            out.write(f"--- start {time.strftime('%H:%M:%S')} fault={fault}\n".encode())
            out.flush()
            self.procs[name] = subprocess.Popen(self.command(name), stdout=out,
                                                stderr=subprocess.STDOUT, env=env)
        self.faults[name] = fault

    def start_all(self, timeout=180):
        for n in ROLES:
            self.start(n)
        self.wait_listening(timeout)

    def wait_listening(self, timeout=60):
        deadline = time.time() + timeout
        import socket
        for port in self.ports:
            while True:
                for n, p in self.procs.items():
                    if p.poll() is not None and not self.faults.get(n):
                        raise RuntimeError(f"{n} exited with {p.returncode}: "
                                           + self.log(n)[-2000:])
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError(f"127.0.0.1:{port} not listening after {timeout} s")
                    time.sleep(0.1)

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs.get(name)
        if p and p.poll() is None:
            p.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                p.wait(timeout=60)
        if sig == signal.SIGKILL and p:
            p.wait(timeout=60)

    def restart(self, name, fault=None):
        self.kill(name)
        self.start(name, fault)

    def dead(self):
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def revive(self):
        """Starts again every role that exited; returns their names and exit codes."""
        out = []
        for n in self.dead():
            out.append((n, self.procs[n].returncode))
            self.start(n)
        if any(n.startswith("api-") for n, _ in out):
            self.wait_listening()
        return out

    def stop_all(self):
        for n, p in self.procs.items():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
        for n, p in self.procs.items():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def tenant(self, name):
        out = subprocess.run([FAULTS_BIN, "tenant", "create", name, "--distributed",
                              "--namespace", self.ns], check=True, capture_output=True,
                             text=True, timeout=120)
        return out.stdout.strip().splitlines()[-1]

    def client(self, which=None):
        """A client of both API servers (round robin per call), or of api-<which+1>."""
        if which is None:
            ch = grpc.insecure_channel(
                f"ipv4:127.0.0.1:{self.ports[0]},127.0.0.1:{self.ports[1]}",
                options=[("grpc.lb_policy_name", "round_robin"),
                         ("grpc.use_local_subchannel_pool", 1)])
        else:
            ch = grpc.insecure_channel(f"127.0.0.1:{self.ports[which]}",
                                       options=[("grpc.use_local_subchannel_pool", 1)])
        return _Client(ch, self.key)


class _Client(Client):
    def __init__(self, channel, key):  # noqa: super().__init__ wants a Server
        from conftest import pbg
        self.channel = channel
        self.key = key
        self.md = (("authorization", f"Bearer {key}"),)
        self.cmd = pbg.LoggingCommandServiceStub(channel)
        self.query = pbg.LoggingQueryServiceStub(channel)


@pytest.fixture(scope="module")
def cluster():
    d = tempfile.mkdtemp(prefix="annals-dfaults-")
    cl = Cluster(d)
    print(f"\nseed {SEED}, namespace {cl.ns}, logs in {d}")
    try:
        cl.start_all()
        cl.key = cl.tenant("tenant-faults")
        c = cl.client()
        from conftest import pb
        cl.logs = [inv._retrying(lambda: inv.call(c, c.cmd.CreateLog, pb.CreateLogRequest(
            labels={"test": "faults"})), time.time() + 60).log.id for _ in range(LOGS)]
        c.close()
        cl.book = inv.Book(cl.logs)
        cl.load = inv.Load(cl.client, cl.book, SEED)
        yield cl
    finally:
        cl.stop_all()
        out = os.environ.get("ANNALS_LOG_DIR")
        if out:
            os.makedirs(out, exist_ok=True)
            for n in ROLES:
                if os.path.exists(cl.log_path(n)):
                    shutil.copy(cl.log_path(n), os.path.join(out, f"dfaults-{cl.ns}-{n}.out"))
        shutil.rmtree(d, ignore_errors=True)


def _check(cl, where, revived=()):
    """Stops the load, restarts what died on its own (reported), checks everything."""
    cl.load.stop()
    died = cl.revive()
    t = time.time()
    n = inv.check_converged(cl, cl.book, cl.load, f"{where} (seed {SEED})", seed=SEED)
    acked = len(cl.book.acked())
    print(f"{where}: {n} entries, {acked} acknowledged requests, "
          f"{cl.book.transient} retried attempts, {len(cl.book.revoked)} revocations, "
          f"checked in {time.time() - t:.1f} s" + (f"; died on their own: {died}" if died else ""))
    assert not [d for d in died if d[0] not in revived], \
        f"{where}: roles died without being killed: {died}: " + \
        " | ".join(cl.log(n)[-1500:] for n, _ in died)


def _wait_exit(cl, name, timeout):
    p = cl.procs[name]
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return p.returncode


SEQ_POINTS = ["seq.rows_written", "seq.heads_committed", "seq.txn_produced",
              "seq.txn_committed", "seq.claimed"]
PROJ_POINTS = ["proj.rows_applied", "proj.committed", "proj.assigned", "proj.claimed"]


@pytest.mark.parametrize("point", SEQ_POINTS + PROJ_POINTS)
def test_fault_point(cluster, point):
    cl = cluster
    victim = "seq-1" if point.startswith("seq.") else "proj-1"
    cl.load.start()
    try:
        time.sleep(1)
        cl.restart(victim, fault=point)
        rc = _wait_exit(cl, victim, 45)
        assert rc is not None, f"{point} was not hit in 45 s"
        assert f"annals fault: {point} hit 1: SIGKILL" in cl.log(victim), \
            f"{victim} exited with {rc} but not at {point}: " + cl.log(victim)[-1500:]
        cl.start(victim)
        time.sleep(2)
    finally:
        _check(cl, f"kill -9 at {point}")


def test_random_kills(cluster):
    cl = cluster
    rnd = random.Random(SEED)
    cl.load.start()
    try:
        for r in range(ROUNDS):
            time.sleep(rnd.uniform(0.5, 2.5))
            victims = rnd.sample(ROLES, rnd.choice([1, 1, 2]))
            for v in victims:
                cl.kill(v)
            time.sleep(rnd.uniform(0, 2))
            for v in victims:
                cl.start(v)
            if any(v.startswith("api-") for v in victims):
                cl.wait_listening()
            print(f"round {r + 1}: killed {victims}")
        time.sleep(2)
    finally:
        _check(cl, f"{ROUNDS} rounds of random kill -9")


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


@pytest.mark.parametrize("point", ["seq.rows_written", "seq.heads_committed"])
def test_zombie_sequencer(cluster, point):
    """seq-1 freezes at `point` with a batch in hand; seq-2 takes its partitions (a session,
    10 s, after the last heartbeat); then seq-1 goes on. Its head commit must be refused
    (Cassandra: range_id moved) or its Kafka transaction fenced (the group's generation
    moved), so what it wrote does not count: the invariants hold and its log says so."""
    cl = cluster
    cl.load.start()
    try:
        time.sleep(1)
        cl.restart("seq-1", fault=f"{point}:1:stop")
        p = cl.procs["seq-1"]
        deadline = time.time() + 45
        while _state(p.pid) != "T":
            assert p.poll() is None, "seq-1 exited: " + cl.log("seq-1")[-1500:]
            assert time.time() < deadline, f"{point} was not hit in 45 s"
            time.sleep(0.1)
        stopped_at = time.time()
        # seq-2 takes over: the session times out (10 s), it claims; every log is served
        c = cl.client()
        try:
            time.sleep(12)
            for lid in cl.logs:
                req = inv.Request("probe", 0, lid, inv.new_entries(random.Random(), "probe", 1),
                                  inv.W.WAIT_SEQUENCED)
                with cl.book.lock:
                    cl.book.requests.append(req)
                req.seq = len(cl.book.requests)
                assert inv.attempt_write(c, cl.book, req, deadline=time.time() + 60), \
                    f"log {lid} not served while seq-1 is frozen"
        finally:
            c.close()
        took = time.time() - stopped_at
        before = len(cl.log("seq-1"))
        p.send_signal(signal.SIGCONT)
        time.sleep(5)
        after = cl.log("seq-1")[before:]
        print(f"zombie at {point}: frozen {took:.1f} s; after SIGCONT it said:\n{after[:1500]}")
        assert "fenced" in after or "send offsets" in after or "commit transaction" in after \
            or p.poll() is not None, \
            f"the zombie sequencer went on without being fenced: {after[:2000]}"
    finally:
        p = cl.procs["seq-1"]
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
        # the zombie may have given up (a fatal fencing error): then it is restarted
        _check(cl, f"zombie sequencer at {point}", revived=("seq-1",))


def _engine_pid(engine):
    node = os.path.join(SERVICES, engine, "node1")
    pidfile = {"kafka": os.path.join(node, "kafka.pid"),
               "cassandra": os.path.join(node, "cassandra.pid"),
               "postgres": os.path.join(node, "data", "postmaster.pid")}[engine]
    with open(pidfile) as f:
        return int(f.readline().strip())


def _engine_up(engine):
    t = time.time()
    r = subprocess.run([os.path.join(DEPLOY_ROOT, "deploy", "services-up.sh"), engine],
                       cwd=DEPLOY_ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, f"{engine} did not come back: {r.stdout[-1500:]} {r.stderr[-1500:]}"
    return time.time() - t


# Cassandra last, so that whatever it leaves cannot fail the other engines' scenarios on the
# shared cluster. Its kill -9 once lost an entry row whose insert_id row and head had taken
# (a retry then got a second id): the node ran `commitlog_sync: periodic`, which acknowledges
# writes a kill -9 then drops from the replay (docs/cql.md, "Durability of the engine");
# deploy/cassandra/cassandra.yaml.in now runs `batch`. The running node takes it at its next
# start (deploy/services-up.sh renders the configuration each time).


@pytest.mark.skipif(not ENGINES, reason="ANNALS_FAULTS_ENGINES=0")
@pytest.mark.parametrize("engine", ["kafka", "postgres", "cassandra"])
def test_engine_restart(cluster, engine):
    """kill -9 of a shared engine (its whole process group: PostgreSQL's backends too) during
    load, started again at once with deploy/services-up.sh; clients see UNAVAILABLE and retry
    with the same insert_ids; the roles reconnect on their own."""
    cl = cluster
    if engine == "cassandra":
        # What the node acknowledged must survive its kill -9: only a node started with
        # `commitlog_sync: batch` (or group) promises that (docs/cql.md).
        conf = os.path.join(SERVICES, "cassandra", "node1", "conf", "cassandra.yaml")
        with open(conf) as f:
            sync = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("commitlog_sync:")]
        assert sync and sync[0] in ("batch", "group"), \
            f"the running Cassandra has commitlog_sync {sync}: a kill -9 loses acknowledged " \
            "writes; restart it (deploy/services-down.sh cassandra; deploy/services-up.sh cassandra)"
    cl.load.start()
    killed = None
    try:
        time.sleep(2)
        pid = _engine_pid(engine)
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            pgid = None
        killed = time.time()
        if pgid and pgid == pid:
            os.killpg(pgid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
                time.sleep(0.05)
            except ProcessLookupError:
                break
        time.sleep(1)
    finally:
        if killed:
            took = _engine_up(engine)
            print(f"{engine}: down {time.time() - killed:.1f} s (restart {took:.1f} s)")
    try:
        time.sleep(5)
        died = [n for n in cl.dead()]
        if died:
            print(f"roles that exited during the {engine} outage: "
                  + ", ".join(f"{n}: {cl.log(n)[-300:]}" for n in died))
    finally:
        _check(cl, f"kill -9 and restart of {engine}", revived=tuple(ROLES))
