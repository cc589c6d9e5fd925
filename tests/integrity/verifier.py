"""An independent verifier of annals' integrity formats (issue 10, docs/integrity.md).

Written from RFC 9162 section 2.1, the C2SP signed-note and tlog-checkpoint specifications
and the issue's text, not from the C code, so that the two can be compared. Uses hashlib for
SHA-256 and the `cryptography` package for Ed25519.

    leaf_input(entry) / leaf_hash(entry)     the entry's leaf in its log's tree
    body_bytes(labels, payload)              the canonical labels-and-payload bytes
    Tree(leaf_hashes)                        MTH, PATH, PROOF as the RFC defines them
    verify_inclusion / verify_consistency    RFC 9162 2.1.3.2 and 2.1.4.2
    VerifierKey(text).open(note)             a signed note, checked against the key
    parse_checkpoint(text)                   (origin, size, root)
"""
import base64
import binascii
import hashlib
import struct
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EM_DASH = "\u2014"


class VerifyError(Exception):
    pass


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


# ---- Entries (issue 10, section 1) ----------------------------------------------------------

def body_bytes(labels, payload):
    """labels: {key: value} as str or bytes; payload: None, ("text", str|bytes) or
    ("json", serialized google.protobuf.Struct bytes)."""
    def b(x):
        return x.encode("utf-8") if isinstance(x, str) else bytes(x)

    def lv(x):
        return struct.pack(">I", len(x)) + x

    items = sorted(((b(k), b(v)) for k, v in labels.items()), key=lambda kv: kv[0])
    out = struct.pack(">I", len(items))
    for k, v in items:
        out += lv(k) + lv(v)
    if payload is None:
        out += b"\x00"
    elif payload[0] == "text":
        out += b"\x01" + lv(b(payload[1]))
    elif payload[0] == "json":
        out += b"\x02" + lv(bytes(payload[1]))
    else:
        raise ValueError("payload kind %r" % (payload[0],))
    return out


def body_hash(salt, labels, payload):
    return sha256(bytes(salt), body_bytes(labels, payload))


def leaf_input(entry_id, time_ns, insert_time_ns, severity, insert_id, bhash):
    iid = insert_id.encode("utf-8") if isinstance(insert_id, str) else bytes(insert_id)
    return (b"annals.v1.entry" + struct.pack(">Q", entry_id) + struct.pack(">q", time_ns) +
            struct.pack(">q", insert_time_ns) + struct.pack(">i", severity) +
            struct.pack(">I", len(iid)) + iid + bytes(bhash))


def leaf_hash(data):
    return sha256(b"\x00", data)


def node_hash(left, right):
    return sha256(b"\x01", left, right)


# ---- The tree (RFC 9162 2.1.1, 2.1.3.1, 2.1.4.1) ---------------------------------------------

def _k(n):
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


class Tree:
    def __init__(self, leaf_hashes):
        self.leaves = list(leaf_hashes)
        self.mth = lru_cache(maxsize=None)(self._mth)

    def _mth(self, lo, hi):
        """MTH(D[lo:hi])."""
        n = hi - lo
        if n == 0:
            return sha256(b"")
        if n == 1:
            return self.leaves[lo]
        k = _k(n)
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def root(self, n):
        return self.mth(0, n)

    def path(self, m, n, lo=0):
        """PATH(m, D[lo:lo+n])."""
        if n <= 1:
            return []
        k = _k(n)
        if m < k:
            return self.path(m, k, lo) + [self.mth(lo + k, lo + n)]
        return self.path(m - k, n - k, lo + k) + [self.mth(lo, lo + k)]

    def proof(self, m, n):
        """PROOF(m, D[n])."""
        return self._subproof(m, n, 0, True)

    def _subproof(self, m, n, lo, b):
        if m == n:
            return [] if b else [self.mth(lo, lo + n)]
        k = _k(n)
        if m <= k:
            return self._subproof(m, k, lo, b) + [self.mth(lo + k, lo + n)]
        return self._subproof(m - k, n - k, lo + k, False) + [self.mth(lo, lo + k)]


def verify_inclusion(index, size, lhash, path, root):
    """RFC 9162 2.1.3.2 (index is 0-based)."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, lhash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, path):
    """RFC 9162 2.1.4.2, with the trivial cases (first == second, first == 0) of 2.1.4."""
    if first > second:
        return False
    if first == second:
        return not path and first_hash == second_hash
    if first == 0:
        return not path
    if not path:
        return False
    path = list(path)
    if first & (first - 1) == 0:
        path = [first_hash] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


# ---- Signed notes (C2SP signed-note) and checkpoints (C2SP tlog-checkpoint) -------------------

def _b64(s):
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise VerifyError("not base64: %r" % s)
    if base64.b64encode(raw).decode() != s:
        raise VerifyError("not canonical base64: %r" % s)
    return raw


def key_id(name, alg_and_key):
    return sha256(name.encode("utf-8") + b"\n" + alg_and_key)[:4]


class VerifierKey:
    """A note verifier key "<name>+<hex key id>+<base64(0x01 || Ed25519 public key)>"."""

    def __init__(self, text):
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise VerifyError("verifier key: not name+id+key")
        self.name, hid, key = parts
        if not self.name or len(hid) != 8:
            raise VerifyError("verifier key: bad name or key id")
        raw = _b64(key)
        if len(raw) != 33 or raw[0] != 0x01:
            raise VerifyError("verifier key: not an Ed25519 key")
        try:
            self.id = bytes.fromhex(hid)
        except ValueError:
            raise VerifyError("verifier key: key id is not hex")
        if key_id(self.name, raw) != self.id:
            raise VerifyError("verifier key: key id does not match")
        self.key = Ed25519PublicKey.from_public_bytes(raw[1:])

    def open(self, note):
        """Returns the note's text once a signature of this key verifies over it."""
        if isinstance(note, bytes):
            try:
                note = note.decode("utf-8")
            except UnicodeDecodeError:
                raise VerifyError("note: not UTF-8")
        if any(ord(c) < 0x20 and c != "\n" for c in note):
            raise VerifyError("note: control character")
        if not note.endswith("\n"):
            raise VerifyError("note: no final newline")
        cut = note.rfind("\n\n")
        if cut < 0:
            raise VerifyError("note: no blank line")
        text, sigs = note[:cut + 1], note[cut + 2:]
        if not sigs:
            raise VerifyError("note: no signatures")
        good = 0
        for line in sigs[:-1].split("\n"):
            if not line.startswith(EM_DASH + " "):
                raise VerifyError("note: bad signature line %r" % line)
            rest = line[2:]
            name, sep, b64 = rest.partition(" ")
            if not sep or not name or "+" in name or " " in b64:
                raise VerifyError("note: bad signature line %r" % line)
            sig = _b64(b64)
            if len(sig) < 5:
                raise VerifyError("note: short signature")
            if name != self.name or sig[:4] != self.id:
                continue  # another key's: ignored
            try:
                self.key.verify(sig[4:], text.encode("utf-8"))
            except InvalidSignature:
                raise VerifyError("note: invalid signature by %s" % self.name)
            good += 1
        if not good:
            raise VerifyError("note: no signature by %s" % self.name)
        return text


def parse_checkpoint(text):
    """(origin, size, root) of a checkpoint's text (after VerifierKey.open)."""
    lines = text.split("\n")
    if lines[-1] != "" or len(lines) < 4:
        raise VerifyError("checkpoint: fewer than 3 lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not origin:
        raise VerifyError("checkpoint: empty origin")
    if not size.isdigit() or not size.isascii() or (size != "0" and size[0] == "0"):
        raise VerifyError("checkpoint: bad size %r" % size)
    if int(size) >= 1 << 64:
        raise VerifyError("checkpoint: size beyond 64 bits")
    if any(not line for line in lines[3:-1]):
        raise VerifyError("checkpoint: empty extension line")
    r = _b64(root)
    if len(r) != 32:
        raise VerifyError("checkpoint: root is not 32 bytes")
    return origin, int(size), r
