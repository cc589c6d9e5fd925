"""kill -9 during concurrent traffic, many times over; then check the invariants.

Each round: start annalsd on the same data directory, check everything the clients know,
retry what was not acknowledged, check again; then run at once
  - writer threads (several logs, unique insert_ids, batches of various sizes),
  - tail followers (one per long-lived log, resuming from the last id they saw),
  - a revoker (1 to 500 ids per call), and a create/write/delete cycler,
and kill -9 the server at a random moment (every fifth round: SIGTERM, which must exit 0).
After every restart:
  - every acknowledged entry is there exactly once, with its acknowledged id and payload;
  - every log's ids are dense 1..N, entry_count is N, no insert_id appears twice;
  - an unacknowledged write is all or nothing (all its entries, consecutive ids, or none);
  - what a tail showed was durable: each (id, insert_id) a follower saw is stored so, and
    a follower's ids run 1, 2, 3, ... across all its reconnections (no gap, no duplicate);
  - acknowledged logs exist; acknowledged deletions hold; an unacknowledged deletion is
    all or nothing;
  - acknowledged revocations hold; an unacknowledged one is all or nothing; no redacted
    entry's payload is left anywhere in the data directory;
  - retrying the unacknowledged writes returns ids (the stored ones for stored entries)
    and stores every entry exactly once.

ANNALS_CRASH_ROUNDS overrides the number of rounds (default 20, 5 under ANNALS_SANITIZED=1).
ANNALS_CRASH_SEED fixes the random choices (the seed is in every failure message).
"""
import os
import random
import signal
import tempfile
import threading
import time

import pytest

from conftest import SANITIZED, Client, Server, pb
from invariants import (CHECK_SECONDS, LONG_LOGS, WRITERS, Book, Follower, catch_up, check,
                        cycler, guarded, retry_unacked, revoker, writer)

ROUNDS = int(os.environ.get("ANNALS_CRASH_ROUNDS", "5" if SANITIZED else "20"))
SEED = int(os.environ.get("ANNALS_CRASH_SEED", str(int(time.time()))))


@pytest.mark.timeout(900)
def test_kill9_during_concurrent_traffic():
    rnd = random.Random(SEED)
    print(f"crash test: seed {SEED}, {ROUNDS} rounds")
    book = Book()
    retried = 0
    with tempfile.TemporaryDirectory(prefix="annals-crash-") as d:
        s = Server(d, extra_args=["--seal-idle-ms", "150"])  # seal often: blocks in every round
        key = s.tenant("crash")
        s.start()
        try:
            c = Client(s, key)
            for _ in range(LONG_LOGS):
                book.logs.append(c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id)
            c.close()
            followers = [Follower(lid) for lid in book.logs[:LONG_LOGS]]
            for rnd_no in range(ROUNDS):
                where = f"round {rnd_no} (seed {SEED})"
                c = Client(s, key)
                try:
                    check(c, book, followers, where + " after restart", d)
                    retried += retry_unacked(c, book, where)
                    check(c, book, followers, where + " after retries")
                    book.logs.append(c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id)
                finally:
                    c.close()
                stop = threading.Event()
                ts = [threading.Thread(target=guarded(book, writer), args=(
                    s, key, book, stop, rnd.random(), f"r{rnd_no}w{i}"))
                    for i in range(WRITERS)]
                ts += [threading.Thread(target=guarded(book, f.run), args=(s, key, book, stop))
                       for f in followers]
                ts.append(threading.Thread(target=guarded(book, revoker),
                                           args=(s, key, book, stop, rnd.random())))
                ts.append(threading.Thread(target=guarded(book, cycler),
                                           args=(s, key, book, stop, rnd.random())))
                for t in ts:
                    t.start()
                time.sleep(rnd.uniform(0.1, 1.2))
                if rnd_no % 5 == 4:  # now and then an orderly stop under the same load
                    rc = s.stop()
                    assert rc == 0, f"{where}: SIGTERM under load gave exit {rc}: " + \
                        open(s.log_path, errors="replace").read()[-3000:]
                else:
                    s.kill(signal.SIGKILL)
                stop.set()
                for f in followers:
                    f.cancel()
                for t in ts:
                    t.join()
                assert not book.errors, f"{where}: {book.errors}"
                s.start()
            c = Client(s, key)
            try:
                check(c, book, followers, "final", d)
                retry_unacked(c, book, "final")
                check(c, book, followers, "final after retries")
            finally:
                c.close()
            catch_up(s, key, book, followers, "final")
            c = Client(s, key)
            try:
                check(c, book, followers, "final after catching up", d)
            finally:
                c.close()
            blocks = [f for _, _, fs in os.walk(d) for f in fs if f.endswith(".blk")]
            assert blocks, "no log was ever sealed: the rounds did not exercise sealed blocks"
            print(f"crash test: {len(book.acked)} acknowledged writes, "
                  f"{sum(len(r.entries) for r in book.acked)} entries, {len(book.logs)} logs, "
                  f"{retried} writes retried, {len(book.revoked)} revoked, "
                  f"{len(book.revokes_unacked)} revocations unacknowledged, tails saw "
                  f"{sum(len(f.seen) for f in followers)} entries; checking took "
                  f"{CHECK_SECONDS[0]:.0f} s")
        finally:
            if s.proc is not None:
                rc = s.stop()
                assert rc == 0, "annalsd did not exit 0 on SIGTERM after the crash rounds"
