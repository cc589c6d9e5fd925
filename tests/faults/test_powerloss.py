"""Power loss: what an acknowledgement promised must survive losing every unsynced write.

kill -9 keeps the page cache, so the crash test cannot show that an acknowledged entry
is on disk. Here annalsd runs under the power-cut shim (powercut.c, powercut.py): after
the kill, the data directory is replaced by what the disk held — only what fsync and
directory fsync made durable (strict), or that plus a random part of the rest (torn:
sectors of unsynced writes, a prefix of unsynced name changes). docs/testing.md has the
design.

The shim's own tests come first (test_shim_*): each can fail, and shows one rule.

ANNALS_POWERLOSS_ROUNDS overrides the number of rounds (default 25).
ANNALS_POWERLOSS_SEED fixes the random choices (the seed is in every failure message).
ANNALS_POWERLOSS_KEEP=dir keeps, on a failure, the directory before the last cut, the
shim's shadow and the image (for a post-mortem).
"""
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import grpc
import pytest

import powercut
from conftest import BIN, Client, Server, pb
from invariants import (CHECK_SECONDS, LONG_LOGS, WRITERS, Book, Follower, catch_up, check,
                        cycler, guarded, retry_unacked, revoker, writer)

ROUNDS = int(os.environ.get("ANNALS_POWERLOSS_ROUNDS", "25"))
SEED = int(os.environ.get("ANNALS_POWERLOSS_SEED", str(int(time.time()))))
KEEP = os.environ.get("ANNALS_POWERLOSS_KEEP")
LIB = powercut.library(BIN)


def run_under_shim(data, shadow, script, verify=True, expect_kill=True):
    """Runs a Python script under the shim in data; it ends by killing itself (SIGKILL) unless
    told otherwise. Returns the completed process."""
    prelude = textwrap.dedent("""\
        import os, signal, sqlite3, sys, ctypes
        D = sys.argv[1]
        def create(name, data=b"", flags=0):
            fd = os.open(os.path.join(D, name), os.O_CREAT | os.O_WRONLY | flags, 0o600)
            if data:
                os.write(fd, data)
            return fd
        def fsync_dir(path=D):
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        def die():
            os.kill(os.getpid(), signal.SIGKILL)
        """)
    env = powercut.env(LIB, data, shadow, verify=verify)
    p = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script),
                        os.path.abspath(data)], env=env,
                       capture_output=True, text=True, timeout=120)
    if expect_kill:
        assert p.returncode == -signal.SIGKILL, f"script failed ({p.returncode}): {p.stderr}"
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture
def tmp(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    return str(data), str(tmp_path / "shadow")


def test_shim_strict_image(tmp):
    """Only what fsync and directory fsync made durable is in the strict image."""
    data, shadow = tmp
    for name, content in [("keep", b"K" * 5000), ("old", b"O" * 3000), ("tr", b"T" * 3000),
                          ("keep2", b"2" * 100), ("gone1", b"g"), ("gone2", b"h"),
                          ("tz", b"Z" * 3000), ("mm", b"m" * 8192)]:
        write(os.path.join(data, name), content)
    run_under_shim(data, shadow, """
        fd = create("a", b"A" * 5000); os.fsync(fd); os.close(fd)      # data and name synced
        fd_b = create("b")                                              # name synced, data not
        fd = os.open(os.path.join(D, "keep"), os.O_RDWR)
        os.pwrite(fd, b"k" * 10, 100); os.fsync(fd)                     # synced overwrite
        os.pwrite(fd, b"x" * 10, 200); os.close(fd)                     # unsynced overwrite
        fd = os.open(os.path.join(D, "tr"), os.O_RDWR)
        os.ftruncate(fd, 1000); os.fsync(fd); os.ftruncate(fd, 2000); os.close(fd)
        fd = os.open(os.path.join(D, "tz"), os.O_RDWR)
        os.ftruncate(fd, 1000); os.ftruncate(fd, 2000); os.fsync(fd); os.close(fd)
        import mmap                                                     # a shared mapping
        fd = os.open(os.path.join(D, "mm"), os.O_RDWR)
        m = mmap.mmap(fd, 8192); m[4000:4010] = b"W" * 10; os.fsync(fd)
        m[6000:6010] = b"V" * 10
        fd = create("ap", flags=os.O_APPEND)
        os.write(fd, b"1" * 100); os.write(fd, b"2" * 100); os.fsync(fd); os.close(fd)
        fd = create("ds", flags=os.O_DSYNC); os.write(fd, b"D" * 700); os.close(fd)
        os.mkdir(os.path.join(D, "sub1"))
        fd = create("sub1/f", b"F" * 10); os.fsync(fd); os.close(fd); fsync_dir(D + "/sub1")
        os.unlink(os.path.join(D, "gone1"))
        db = sqlite3.connect(os.path.join(D, "db"), isolation_level=None)
        db.execute("pragma journal_mode=wal"); db.execute("pragma synchronous=full")
        db.execute("create table t(x)"); db.execute("insert into t values(1)")
        fsync_dir()                                                     # the one sync of D
        os.write(fd_b, b"B" * 3000)
        fd = create("c", b"C" * 100); os.fsync(fd); os.close(fd)        # name never synced
        os.rename(os.path.join(D, "keep2"), os.path.join(D, "keep3"))
        os.unlink(os.path.join(D, "gone2"))
        os.mkdir(os.path.join(D, "sub2"))
        fd = create("sub2/f", b"F"); os.fsync(fd); os.close(fd); fsync_dir(D + "/sub2")
        fd = os.open(os.path.join(D, "old"), os.O_RDWR); os.pwrite(fd, b"Z" * 100, 0)
        db.execute("pragma synchronous=off"); db.execute("insert into t values(2)")
        die()
        """)
    real = {n: read(os.path.join(data, n)) for n in ("b", "keep", "old", "tr")}
    assert real["b"] == b"B" * 3000 and real["old"][:100] == b"Z" * 100  # the shim's inputs
    assert len(real["tr"]) == 2000 and real["keep"][200:210] == b"x" * 10
    stats = powercut.cut(data, shadow)
    files = sorted(os.listdir(data))
    assert files == ["a", "ap", "b", "db", "db-shm", "db-wal", "ds", "gone2", "keep", "keep2", "mm",
                     "old", "sub1", "tr", "tz"], files
    assert read(os.path.join(data, "a")) == b"A" * 5000
    assert read(os.path.join(data, "b")) == b""
    assert read(os.path.join(data, "keep")) == b"K" * 100 + b"k" * 10 + b"K" * 4890
    assert read(os.path.join(data, "old")) == b"O" * 3000
    assert read(os.path.join(data, "tr")) == b"T" * 1000
    assert read(os.path.join(data, "tz")) == b"Z" * 1000 + b"\0" * 1000
    assert read(os.path.join(data, "mm")) == b"m" * 4000 + b"W" * 10 + b"m" * 4182
    assert read(os.path.join(data, "ap")) == b"1" * 100 + b"2" * 100
    assert read(os.path.join(data, "ds")) == b"D" * 700
    assert read(os.path.join(data, "sub1", "f")) == b"F" * 10
    assert read(os.path.join(data, "keep2")) == b"2" * 100
    assert read(os.path.join(data, "gone2")) == b"h"
    db = sqlite3.connect(os.path.join(data, "db"))
    assert [r[0] for r in db.execute("select x from t")] == [1], "an unsynced commit survived"
    db.close()
    assert stats["names lost"] >= 4 and stats["file syncs"] >= 6, stats


def test_shim_torn_image(tmp):
    """A torn image mixes old and new sectors, sizes between, and a prefix of the names."""
    data, shadow = tmp
    old = b"o" * (64 * 512)
    write(os.path.join(data, "f"), old)
    run_under_shim(data, shadow, """
        fd = os.open(os.path.join(D, "f"), os.O_RDWR)
        os.pwrite(fd, b"n" * (80 * 512), 0)
        fd = create("p1", b"1" * 2048); fd = create("p2", b"2" * 2048)
        die()
        """)
    new = b"n" * (80 * 512)
    journal = powercut.Journal(shadow)
    seen_sectors, seen_sizes, seen_names = set(), set(), set()
    for i in range(40):
        dest = os.path.join(os.path.dirname(data), f"image{i}")
        powercut.materialize(journal, dest, real=data, rng=random.Random(i))
        got = read(os.path.join(dest, "f"))
        assert len(old) <= len(got) <= len(new)
        seen_sizes.add(len(got))
        for s in range(0, len(got), 512):
            sector = got[s:s + 512]
            assert sector in (old[s:s + 512].ljust(512, b"\0")[:len(sector)],
                              new[s:s + 512][:len(sector)]), f"sector {s // 512} is neither"
            seen_sectors.add(sector[:1])
        names = tuple(sorted(os.listdir(dest)))
        assert names in (("f",), ("f", "p1"), ("f", "p1", "p2")), \
            f"not a prefix of the name changes: {names}"
        seen_names.add(names)
        for n in names[1:]:  # never synced: each sector is the new one or zeros
            content, digit = read(os.path.join(dest, n)), n[1:].encode()
            assert len(content) <= 2048
            for s in range(0, len(content), 512):
                sector = content[s:s + 512]
                assert sector in (digit * len(sector), b"\0" * len(sector))
        shutil.rmtree(dest)
    assert seen_sectors >= {b"o", b"n"} and len(seen_sizes) > 2 and len(seen_names) == 3
    dest = os.path.join(os.path.dirname(data), "strict")
    powercut.materialize(journal, dest)
    assert sorted(os.listdir(dest)) == ["f"] and read(os.path.join(dest, "f")) == old


def test_shim_continues_after_kill(tmp):
    """A killed process's unsynced writes stay in the page cache: the next process's fsync
    makes them durable, and without one they are lost."""
    data, shadow = tmp
    run_under_shim(data, shadow, """
        fd = create("k"); fsync_dir(); os.write(fd, b"K" * 9000)
        fd = create("m"); fsync_dir(); os.write(fd, b"M" * 9000)
        fd = create("n", b"N")
        die()
        """)
    run_under_shim(data, shadow, """
        fd = os.open(os.path.join(D, "k"), os.O_RDONLY); os.fsync(fd)
        die()
        """)
    powercut.cut(data, shadow)
    assert sorted(os.listdir(data)) == ["k", "m"]
    assert read(os.path.join(data, "k")) == b"K" * 9000
    assert read(os.path.join(data, "m")) == b""


def test_shim_refuses_what_it_did_not_see(tmp):
    """A file made or written behind the shim's back (a raw system call) fails loudly."""
    data, shadow = tmp
    raw = """
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        """
    p = run_under_shim(data, shadow, raw + """
        fd = libc.syscall(257, -100, os.path.join(D, "raw").encode(), os.O_CREAT | os.O_WRONLY, 0o600)
        assert fd >= 0
        fsync_dir()
        """, expect_kill=False)
    assert p.returncode == -signal.SIGABRT and "never saw created" in p.stderr, p.stderr
    shutil.rmtree(shadow)
    os.unlink(os.path.join(data, "raw"))
    p = run_under_shim(data, shadow, raw + """
        fd = create("w", b"abc")
        assert libc.syscall(18, fd, b"XYZ", 3, 1) == 3   # pwrite64, not through the shim
        os.fsync(fd)
        """, expect_kill=False)
    assert p.returncode == -signal.SIGABRT and "did not see" in p.stderr, p.stderr


def test_retry_after_kill_is_durable(tmp_path):
    """Entries a killed process wrote but never synced are in the page cache: the next
    process lists them and answers a retry of their write from them. That answer is an
    acknowledgement, so they must be durable before it (a power cut right after it must
    not lose them). The first process runs with --durability none: it writes its frames
    and never syncs, what a process killed before its fdatasync leaves behind."""
    data, shadow = str(tmp_path / "data"), str(tmp_path / "shadow")
    s = Server(data, extra_args=["--durability", "fsync"], log_path=str(tmp_path / "out"))
    key = s.tenant("t")
    s.start()
    c = Client(s, key)
    log_id = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
    c.close()
    assert s.stop() == 0
    entries = [pb.LogEntry(insert_id=f"iid-{i}", text_payload=f"entry {i}") for i in range(50)]
    try:
        s.env = powercut.env(LIB, data, shadow, verify=True)
        s.extra = ["--durability", "none"]
        s.start()
        c = Client(s, key)
        first = c.call(c.cmd.WriteLogEntries,
                       pb.WriteLogEntriesRequest(log_id=log_id, entries=entries)).entry_ids
        c.close()
        s.kill(signal.SIGKILL)
        s.extra = ["--durability", "fsync"]
        s.start()  # the shim continues: the unsynced frame is still only in the page cache
        c = Client(s, key)
        again = c.call(c.cmd.WriteLogEntries,
                       pb.WriteLogEntriesRequest(log_id=log_id, entries=entries)).entry_ids
        c.close()
        assert list(again) == list(first)
        s.kill(signal.SIGKILL)
        powercut.cut(data, shadow)
        s.env = None
        s.start()
        c = Client(s, key)
        got = c.call(c.query.ListLogEntries, pb.ListLogEntriesRequest(
            log_id=log_id, page_size=1000)).entries
        c.close()
        assert [e.insert_id for e in got] == [e.insert_id for e in entries], \
            f"a retry was acknowledged with ids {again[0]}..{again[-1]}, after the power " \
            f"cut {len(got)} of its {len(entries)} entries are stored: " + _tail(s.log_path)
    finally:
        if s.proc is not None:
            s.stop()


def test_directories_of_a_killed_process_are_synced(tmp_path):
    """A killed process may have made a directory (the tenant's) and died before syncing its
    parent: the next process finds it there, but its entry is not durable yet. A log
    created and written by the next process must survive a power cut all the same. (The
    first process runs with --durability none: it syncs nothing, like a process killed
    right after its mkdir.)"""
    data, shadow = str(tmp_path / "data"), str(tmp_path / "shadow")
    s = Server(data, extra_args=["--durability", "none"], log_path=str(tmp_path / "out"))
    key = s.tenant("t")
    entries = [pb.LogEntry(insert_id=f"iid-{i}", text_payload=f"entry {i}") for i in range(5)]
    try:
        s.env = powercut.env(LIB, data, shadow, verify=True)
        s.start()
        c = Client(s, key)
        c.call(c.cmd.CreateLog, pb.CreateLogRequest())  # makes the tenant's directory
        c.close()
        s.kill(signal.SIGKILL)
        s.extra = ["--durability", "fsync"]
        s.start()
        c = Client(s, key)
        log_id = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
        c.call(c.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(log_id=log_id, entries=entries))
        c.close()
        s.kill(signal.SIGKILL)
        powercut.cut(data, shadow)
        s.env = None
        s.start()
        c = Client(s, key)
        try:
            got = c.call(c.query.ListLogEntries, pb.ListLogEntriesRequest(log_id=log_id)).entries
        except grpc.RpcError as e:
            raise AssertionError(f"log {log_id}, created and written with acknowledgements "
                                 f"before the cut, is unreadable: {e.code()} {e.details()}; "
                                 + _tail(s.log_path)) from None
        finally:
            c.close()
        assert [e.insert_id for e in got] == [e.insert_id for e in entries]
    finally:
        if s.proc is not None:
            s.stop()


# The rounds cycle through these: a power cut while serving (strict image, then torn), a
# kill -9 (the page cache survives: the next process continues the same shadow, so what
# the killed process wrote but never synced is lost only at a later cut unless synced),
# and a clean stop (SIGTERM, exit 0) followed by a cut (strict or torn at random).
KINDS = ["strict", "kill", "torn", "kill", "stop"]
VERIFY_ROUNDS = 3  # the shim compares whole files at every sync in the first rounds


def _tail(path, n=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


@pytest.mark.timeout(900)
def test_power_loss_during_concurrent_traffic():
    rnd = random.Random(SEED)
    print(f"power-loss test: seed {SEED}, {ROUNDS} rounds")
    book = Book()
    followers = []
    retried = 0
    counts = {"strict": 0, "torn": 0, "kill": 0, "stop": 0, "early": 0, "names lost": 0,
              "files torn": 0, "sectors new": 0, "sectors old": 0, "file syncs": 0,
              "dir syncs": 0}
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="annals-power-") as root:
        data, shadow = os.path.join(root, "data"), os.path.join(root, "shadow")
        last = os.path.join(root, "last-cut")
        s = Server(data, extra_args=["--durability", "fsync", "--seal-idle-ms", "150"],
                   log_path=os.path.join(root, "annalsd.out"))  # seals in every round
        key = s.tenant("power")  # without the shim: the directory starts durable
        try:
            for rnd_no in range(ROUNDS):
                kind = KINDS[rnd_no % len(KINDS)]
                where = f"round {rnd_no} (after the cut of round {rnd_no - 1}; seed {SEED})"
                s.env = powercut.env(LIB, data, shadow, verify=rnd_no < VERIFY_ROUNDS)
                s.start()
                c = Client(s, key)
                try:
                    if rnd_no == 0:
                        for _ in range(LONG_LOGS):
                            book.logs.append(
                                c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id)
                        followers = [Follower(lid) for lid in book.logs[:LONG_LOGS]]
                    else:
                        check(c, book, followers, where + " after restart", data)
                        retried += retry_unacked(c, book, where)
                        check(c, book, followers, where + " after retries")
                    book.logs.append(c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id)
                finally:
                    c.close()
                # Now and then the cut comes before any new traffic: right after the
                # recovery, the checks and the retries.
                early = rnd_no > 0 and rnd.random() < 0.2
                stop = threading.Event()
                ts = []
                if not early:
                    ts = [threading.Thread(target=guarded(book, writer), args=(
                        s, key, book, stop, rnd.random(), f"r{rnd_no}w{i}"))
                        for i in range(WRITERS)]
                    ts += [threading.Thread(target=guarded(book, f.run),
                                            args=(s, key, book, stop)) for f in followers]
                    ts.append(threading.Thread(target=guarded(book, revoker),
                                               args=(s, key, book, stop, rnd.random())))
                    ts.append(threading.Thread(target=guarded(book, cycler),
                                               args=(s, key, book, stop, rnd.random())))
                for t in ts:
                    t.start()
                if not early:
                    time.sleep(rnd.uniform(0.1, 1.2))
                assert s.proc.poll() is None, \
                    f"round {rnd_no} (seed {SEED}): annalsd died before the cut"
                if kind == "stop":
                    rc = s.stop()
                    assert rc == 0, f"round {rnd_no} (seed {SEED}): SIGTERM gave exit {rc}"
                else:
                    s.kill(signal.SIGKILL)
                stop.set()
                for f in followers:
                    f.cancel()
                for t in ts:
                    t.join()
                assert not book.errors, f"round {rnd_no} (seed {SEED}): {book.errors}"
                counts[kind] += 1
                counts["early"] += early
                if kind == "kill":
                    continue  # same shadow: the next process continues it
                torn = kind == "torn" or (kind == "stop" and rnd.random() < 0.5)
                if kind == "stop":
                    counts["torn" if torn else "strict"] += 1
                stats = powercut.cut(data, shadow, rng=random.Random(rnd.random()) if torn
                                     else None, keep=last)
                for k in ("names lost", "files torn", "sectors new", "sectors old",
                          "file syncs", "dir syncs"):
                    counts[k] += stats[k]
            where = f"final (seed {SEED})"
            s.env = None  # the last restart without the shim
            s.start()
            c = Client(s, key)
            try:
                check(c, book, followers, where, data)
                retry_unacked(c, book, where)
                check(c, book, followers, where + " after retries")
            finally:
                c.close()
            catch_up(s, key, book, followers, where)
            c = Client(s, key)
            try:
                check(c, book, followers, where + " after catching up", data)
            finally:
                c.close()
        except AssertionError as e:
            if KEEP:
                shutil.copytree(root, KEEP, dirs_exist_ok=True)
            raise AssertionError(f"{e}\n--- annalsd output (end) ---\n"
                                 f"{_tail(s.log_path)}") from None
        finally:
            if s.proc is not None:
                rc = s.stop()
                assert rc == 0, "annalsd did not exit 0 on SIGTERM after the power-loss rounds"
    print(f"power-loss test: {ROUNDS} rounds in {time.time() - t_start:.0f} s: "
          f"{counts['strict']} strict cuts, {counts['torn']} torn cuts ({counts['stop']} of "
          f"them after a clean stop), {counts['kill']} kill -9, {counts['early']} cuts right "
          f"after recovery; {len(book.acked)} acknowledged writes, "
          f"{sum(len(r.entries) for r in book.acked)} entries, {len(book.logs)} logs, "
          f"{retried} writes retried, {len(book.revoked)} revoked; shim: "
          f"{counts['file syncs']} file syncs, {counts['dir syncs']} directory syncs, "
          f"{counts['names lost']} name changes lost, {counts['files torn']} files torn "
          f"({counts['sectors new']} sectors new, {counts['sectors old']} old); checking took "
          f"{CHECK_SECONDS[0]:.0f} s")
