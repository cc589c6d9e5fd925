"""What a data directory holds, read as someone with the disk would read it.

Every file's raw bytes, and the content of every zstd frame found anywhere in it (sealed
blocks keep their sections as standard zstd frames, so a payload can be hidden from a plain
grep by compression alone). Tests that check revoked or deleted bytes are gone scan both.
"""
import os

import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _frames(data):
    """The decompressed content of each zstd frame in data (damaged ones skipped)."""
    out = []
    pos = data.find(ZSTD_MAGIC)
    while pos >= 0:
        try:
            d = zstandard.ZstdDecompressor().decompressobj()
            out.append(d.decompress(data[pos:pos + (64 << 20)]))
        except zstandard.ZstdError:
            pass
        pos = data.find(ZSTD_MAGIC, pos + 1)
    return out


def readable(path):
    """[raw bytes] + [each zstd frame's content] of one file ([] if unreadable)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return []
    return [data] + _frames(data)


def walk(root):
    """(path relative to root, blob) for every readable blob of every file under root."""
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            for blob in readable(p):
                yield os.path.relpath(p, root), blob


def files_containing(root, needles):
    """(file, needle) for every needle found in a file under root, raw or compressed."""
    hits = set()
    for rel, blob in walk(root):
        for n in needles:
            if n in blob:
                hits.add((rel, n))
    return sorted(hits)


# ---- a log's own files, as an intruder or a power cut would change them ----

LOG_FILES = (".dat", ".blk")  # its records and its sealed blocks


def log_base(data_dir, log_id):
    """The path of the log's files without their extension (<base>.dat, .blk, .mrk)."""
    return next(os.path.join(r, f[:-4]) for r, _, fs in os.walk(data_dir) for f in fs
                if f == log_id + ".dat")


def snapshot_log(base):
    """The log's records and sealed blocks as they are now: {extension: bytes}."""
    out = {}
    for ext in LOG_FILES:
        if os.path.exists(base + ext):
            with open(base + ext, "rb") as f:
                out[ext] = f.read()
    return out


def put_back_log(base, kept, also=()):
    """Writes a snapshot back; the log's files it did not have go, and so do `also`'s."""
    for ext in LOG_FILES + tuple(also):
        if ext in kept:
            with open(base + ext, "wb") as f:
                f.write(kept[ext])
        elif os.path.exists(base + ext):
            os.remove(base + ext)
