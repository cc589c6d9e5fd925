"""TailLogEntries: backlog in id order, then live entries; no gap, no duplicate; resume."""
import queue
import random
import threading

import grpc
import pytest

from helpers import (TailReader, create_log, entry, expect_code, expect_invalid, ids_of,
                     list_all, pb, tail_first, texts, uid, write_and_wait)


def seq(a, b):
    return [str(i) for i in range(a, b + 1)]


def test_from_zero_sends_backlog_then_new_entries(client, log):
    write_and_wait(client, log, texts(5, "old"))
    t = TailReader(client, log, "0")
    try:
        got = t.take(5)
        assert ids_of(got) == seq(1, 5)
        assert [e.text_payload for e in got] == [f"old {i}" for i in range(5)]
        write_and_wait(client, log, texts(3, "new"))
        got = t.take(3)
        assert ids_of(got) == seq(6, 8)
        assert [e.text_payload for e in got] == [f"new {i}" for i in range(3)]
    finally:
        t.cancel()


def test_from_an_id_in_the_middle(client, log):
    write_and_wait(client, log, texts(5))
    t = TailReader(client, log, "2")
    try:
        assert ids_of(t.take(3)) == seq(3, 5)
        write_and_wait(client, log, texts(2))
        assert ids_of(t.take(2)) == seq(6, 7)
    finally:
        t.cancel()


def test_from_zero_on_an_empty_log(client, log):
    t = TailReader(client, log, "0")
    try:
        write_and_wait(client, log, texts(4))
        assert ids_of(t.take(4)) == seq(1, 4)
    finally:
        t.cancel()


def test_empty_after_id_means_from_the_current_end(client, log):
    write_and_wait(client, log, texts(5, "old"))
    t = TailReader(client, log, "")
    try:
        # We cannot know when the server took its position, so write until something
        # arrives; what arrives must be new, and from then on complete.
        written = 5
        first = None
        for _ in range(600):
            written = int(write_and_wait(client, log, texts(1, "new"))[-1])
            try:
                first = t.q.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        assert first is not None, "a tail from the current end never delivered anything"
        assert int(first.entry_id) > 5, f"tail from the end replayed old entry {first.entry_id}"
        assert first.text_payload == "new 0"
        rest = t.take_until(str(written)) if int(first.entry_id) < written else []
        write_and_wait(client, log, texts(3, "more"))
        rest += t.take(3)
        assert ids_of([first] + rest) == seq(int(first.entry_id), written + 3)
    finally:
        t.cancel()


def test_tail_entries_equal_listed_entries(client, log):
    es = [entry("plain", insert_id=uid(), labels={"k": "v"}, severity=300),
          pb.LogEntry(insert_id=uid(), time={"seconds": 12, "nanos": 34})]
    es[1].json_payload.update({"a": [1, None, True, {"b": "c"}]})
    write_and_wait(client, log, es)
    t = TailReader(client, log, "0")
    try:
        got = t.take(2)
    finally:
        t.cancel()
    listed = sorted(list_all(client, log), key=lambda e: int(e.entry_id))
    assert got == listed
    assert all(e.log_id == log for e in got)


def test_no_gap_no_duplicate_under_concurrent_writers(client, log):
    write_and_wait(client, log, texts(10))
    t = TailReader(client, log, "3")
    errors = []

    def writer(seed):
        rnd = random.Random(seed)
        try:
            for _ in range(25):
                write_and_wait(client, log, texts(rnd.choice([1, 2, 5, 20, 100]), f"w{seed}"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        total = len(list_all(client, log))
        got = t.take(total - 3)
        assert ids_of(got) == seq(4, total)
        assert t.pending() == []
    finally:
        t.cancel()


def test_resume_with_the_last_seen_id_misses_nothing(client, log):
    write_and_wait(client, log, texts(30))
    seen = []
    t = TailReader(client, log, "0")
    seen += t.take(17)
    t.cancel()
    last = seen[-1].entry_id
    write_and_wait(client, log, texts(20))  # written while disconnected
    t = TailReader(client, log, last)
    try:
        seen += t.take(33)
        write_and_wait(client, log, texts(5))
        seen += t.take(5)
    finally:
        t.cancel()
    assert ids_of(seen) == seq(1, 55)


def test_resume_many_times_while_writing(client, log):
    stop = threading.Event()
    errors = []

    def writer():
        try:
            while not stop.is_set():
                write_and_wait(client, log, texts(7))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    w = threading.Thread(target=writer)
    w.start()
    seen, last = [], "0"
    try:
        for _ in range(10):
            t = TailReader(client, log, last)
            seen += t.take(10)
            t.cancel()
            last = seen[-1].entry_id
    finally:
        stop.set()
        w.join()
    assert not errors, errors
    assert ids_of(seen) == seq(1, len(seen))


def test_several_tails_on_one_log(client, log):
    tails = [TailReader(client, log, "0") for _ in range(5)]
    try:
        for _ in range(5):
            write_and_wait(client, log, texts(20))
        for t in tails:
            assert ids_of(t.take(100)) == seq(1, 100)
    finally:
        for t in tails:
            t.cancel()


def test_tail_keeps_up_with_a_big_write(client, log):
    t = TailReader(client, log, "0")
    try:
        write_and_wait(client, log, texts(10000, "bulk"))
        got = t.take(10000)
        assert ids_of(got) == seq(1, 10000)
    finally:
        t.cancel()


def test_deleting_the_log_ends_the_tail_with_not_found(client):
    log = create_log(client)
    write_and_wait(client, log, texts(2))
    t = TailReader(client, log, "0")
    assert ids_of(t.take(2)) == seq(1, 2)
    client.call(client.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log))
    err = t.finish()
    assert err is not None, "the tail ended with OK after its log was deleted"
    assert err.code() == grpc.StatusCode.NOT_FOUND, (err.code(), err.details())


def test_deleting_a_log_with_an_idle_tail_from_the_end(client):
    log = create_log(client)
    t = TailReader(client, log, "")
    # whether the server placed the tail before or after this write, deletion must end it
    write_and_wait(client, log, texts(1))
    client.call(client.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log))
    err = t.finish()
    assert err is not None and err.code() == grpc.StatusCode.NOT_FOUND, err


@pytest.mark.parametrize("bad", ["abc", "1a", "-x", " 1", "1.5", "+1"])
def test_non_decimal_after_entry_id_is_invalid(client, log, bad):
    write_and_wait(client, log, texts(2))
    expect_invalid(tail_first, client, log, bad, field="entry_id")


def test_cancelled_tails_do_not_hurt_the_server(client, log):
    write_and_wait(client, log, texts(3))
    for _ in range(30):
        t = TailReader(client, log, "0")
        t.take(1)
        t.cancel()
    assert write_and_wait(client, log, texts(1)) == ["4"]
    expect_code(grpc.StatusCode.NOT_FOUND, tail_first, client, "00000000-0000-4000-8000-000000000000")
