"""The engines' data directories, read as someone with the disk would read them.

diskscan.py reads annals' own files (raw bytes and zstd frames). The engines compress with
LZ4: Kafka record batches (the producer's compression.type=lz4: LZ4 frames) and Cassandra
SSTables (LZ4Compressor chunks, offsets in CompressionInfo.db). This module decodes both,
with a plain LZ4 block decoder written here (no third-party code), so a revoked secret cannot
hide from the scan behind compression. Every file is also scanned raw.
"""
import os
import struct

LZ4F_MAGIC = b"\x04\x22\x4d\x18"


def lz4_block(src, out=None, limit=1 << 26):
    """Decodes one LZ4 block (the block format) appending to out (history for linked blocks)."""
    out = bytearray() if out is None else out
    i, n = 0, len(src)
    while i < n:
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                b = src[i]
                i += 1
                lit += b
                if b != 255:
                    break
        out += src[i:i + lit]
        i += lit
        if i >= n:
            break
        off = src[i] | (src[i + 1] << 8)
        i += 2
        if off == 0 or off > len(out):
            raise ValueError("lz4: bad offset")
        ml = token & 15
        if ml == 15:
            while True:
                b = src[i]
                i += 1
                ml += b
                if b != 255:
                    break
        ml += 4
        start = len(out) - off
        if ml <= off:
            out += out[start:start + ml]
        else:
            for k in range(ml):
                out.append(out[start + k])
        if len(out) > limit:
            raise ValueError("lz4: too large")
    return out


def lz4_frames(data):
    """The content of every LZ4 frame in data (damaged ones: what decoded before the damage)."""
    res = []
    pos = data.find(LZ4F_MAGIC)
    while pos >= 0:
        out = bytearray()
        try:
            flg = data[pos + 4]
            i = pos + 6 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0) + 1
            while i + 4 <= len(data):
                size = struct.unpack_from("<I", data, i)[0]
                i += 4
                if size == 0:
                    break
                raw, size = size & 0x80000000, size & 0x7FFFFFFF
                blk = data[i:i + size]
                i += size + (4 if flg & 0x10 else 0)
                if raw:
                    out += blk
                else:
                    lz4_block(blk, out)
        except (ValueError, IndexError):
            pass
        if out:
            res.append(bytes(out))
        pos = data.find(LZ4F_MAGIC, pos + 1)
    return res


def _chunk_offsets(info):
    """Chunk offsets at the end of a CompressionInfo.db: int count, then count longs."""
    for c in range(1, len(info) // 8 + 1):
        at = len(info) - 8 * c - 4
        if at < 0:
            break
        if struct.unpack_from(">i", info, at)[0] == c:
            return list(struct.unpack_from(">%dq" % c, info, at + 4))
    return None


def sstable_chunks(data_path):
    """The decompressed chunks of a compressed SSTable Data.db ([] when not compressed)."""
    info_path = data_path[:-len("Data.db")] + "CompressionInfo.db"
    try:
        with open(info_path, "rb") as f:
            info = f.read()
        with open(data_path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    offs = _chunk_offsets(info)
    if not offs:
        return []
    out = []
    for k, o in enumerate(offs):
        end = (offs[k + 1] if k + 1 < len(offs) else len(data)) - 4
        chunk = data[o:end]
        try:
            out.append(bytes(lz4_block(chunk[4:])))
        except (ValueError, IndexError):
            out.append(chunk)  # stored uncompressed (or another compressor: raw bytes)
    return out


def blobs(path, decode):
    """[raw bytes] + decoded content of one file (decode: 'kafka', 'cassandra' or None)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    out = [data]
    if decode == "kafka":
        out += lz4_frames(data)
    elif decode == "cassandra" and path.endswith("Data.db"):
        out += sstable_chunks(path)
    return out


def scan(root, needles, decode_under=(), decode=None):
    """(file relative to root, needle) for each needle found in a file under root; files
    under a directory whose name starts with one of decode_under are decoded too."""
    hits = set()
    for d, _, files in os.walk(root, followlinks=True):  # a node dir may be a link
        rel_d = os.path.relpath(d, root)
        dec = decode if any(part.startswith(decode_under) for part in rel_d.split(os.sep)) \
            and decode_under else None
        for f in files:
            p = os.path.join(d, f)
            for blob in blobs(p, dec):
                for n in needles:
                    if n in blob:
                        hits.add((os.path.relpath(p, root), n))
    return sorted(hits)
