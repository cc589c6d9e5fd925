"""The harness side of the power-cut shim (powercut.c; the design is in docs/testing.md).

A process started with `env(data, shadow)` runs under the shim, which keeps in `shadow`
the durable content of every file under `data` and a journal of every change of a name
and every sync. After the process is killed, `cut(data, shadow, rng)` replaces `data` by
what a disk would hold after a power cut at that moment:

  strict (rng None): exactly what was made durable — file contents as of their last
      fsync/fdatasync, names as of their directory's last fsync;
  torn (rng given): in addition, what the page cache may have written back on its own:
      a random prefix of the name changes (a journaling file system commits its
      metadata in order), and in every file each 512-byte sector that differs between
      the durable and the real content takes either one, and the size anything between
      the two sizes (sectors past the old end that are not taken read as zeros).

Without a process killed in between, `cut` also works after a clean exit.
"""
import os
import shutil

SECTOR = 512
BLOCK = 1 << 16


def library(bin_dir):
    lib = os.environ.get("ANNALS_POWERCUT_LIB") or os.path.join(
        os.path.dirname(os.path.abspath(bin_dir)), "lib", "libannals_powercut.so")
    if not os.path.exists(lib):
        raise RuntimeError(f"{lib} is missing: build the release build (make build)")
    return lib


def env(lib, data, shadow, verify=False, base=None):
    """The environment for a process under the shim (absolute paths)."""
    e = dict(os.environ if base is None else base)
    e["LD_PRELOAD"] = lib
    e["ANNALS_POWERCUT_DIR"] = os.path.abspath(data)
    e["ANNALS_POWERCUT_SHADOW"] = os.path.abspath(shadow)
    if verify:
        e["ANNALS_POWERCUT_VERIFY"] = "1"
    else:
        e.pop("ANNALS_POWERCUT_VERIFY", None)
    return e


def _name(h):
    return os.fsdecode(bytes.fromhex(h))


class Journal:
    """The shim's journal: records, the entries present at the start, the changes."""

    def __init__(self, shadow):
        self.shadow = shadow
        with open(os.path.join(shadow, "journal"), "rb") as f:
            lines = f.read().split(b"\n")[:-1]  # what follows the last newline was cut
        self.root = None
        self.kind = {}      # id -> "D" or "F"
        self.ino = {}       # id -> inode number
        self.latest = {}    # inode number -> the last record made for it
        self.initial = []   # (dir, id, name)
        self.ops = []       # ("C"|"U"|"N"|"S", the directory whose sync makes it durable, args)
        self.errors = []
        self.processes = 0
        self.file_syncs = 0
        for raw in lines:
            f = raw.decode().split(" ")
            t = f[0]
            if t == "R":
                self.root = int(f[1])
            elif t in ("D", "F"):
                i, ino = int(f[1]), int(f[2])
                self.kind[i] = t
                self.ino[i] = ino
                self.latest[ino] = i
            elif t == "E":
                self.initial.append((int(f[1]), int(f[2]), _name(f[3])))
            elif t == "C" or t == "U":
                self.ops.append((t, int(f[1]), (int(f[1]), int(f[2]), _name(f[3]))))
            elif t == "N":
                self.ops.append((t, int(f[2]), (int(f[1]), int(f[2]), int(f[3]),
                                                _name(f[4]), _name(f[5]))))
            elif t == "S":
                self.ops.append((t, int(f[1]), None))
            elif t == "Y":
                self.file_syncs += 1
            elif t == "P":
                self.processes += 1
            elif t == "X":
                self.errors.append(raw.decode()[2:])
        if self.root is None:
            raise AssertionError(f"shim journal in {shadow} has no root record")

    def durable_ops(self):
        """For each change, whether a later sync of its directory made it durable."""
        synced_later, out = set(), [False] * len(self.ops)
        for i in range(len(self.ops) - 1, -1, -1):
            t, d, _ = self.ops[i]
            if t == "S":
                synced_later.add(d)
            else:
                out[i] = d in synced_later
        return out

    def tree(self, prefix=0):
        """{dir id: {name: id}} after the durable changes and the first `prefix` ones."""
        tree = {i: {} for i, k in self.kind.items() if k == "D"}
        for d, i, name in self.initial:
            tree[d][name] = i
        durable = self.durable_ops()
        applied = dropped = 0
        for n, (t, _, a) in enumerate(self.ops):
            if t == "S":
                continue
            if not (durable[n] or n < prefix):
                dropped += 1
                continue
            applied += 1
            if t == "C":
                tree[a[0]][a[2]] = a[1]
            elif t == "U":
                if tree[a[0]].get(a[2]) == a[1]:
                    del tree[a[0]][a[2]]
            else:
                src, dst, i, old, new = a
                if tree[src].get(old) == i:
                    del tree[src][old]
                tree[dst][new] = i
        return tree, applied, dropped


def tear(old, new, rng):
    """A power cut in the middle of writing `new` over `old` (see the module docstring)."""
    lo, hi = sorted((len(old), len(new)))
    size = rng.choice([len(old), len(new), rng.randint(lo, hi)])
    p = rng.choice([0.1, 0.5, 0.9])  # how much of the page cache made it to disk
    out = bytearray(size)
    taken = kept = 0
    for b in range(0, size, BLOCK):
        a, n = old[b:b + BLOCK], new[b:b + BLOCK]
        if a == n:
            out[b:b + len(a)] = a[:size - b]
            continue
        for s in range(b, min(b + BLOCK, size), SECTOR):
            x = old[s:s + SECTOR].ljust(SECTOR, b"\0")
            y = new[s:s + SECTOR].ljust(SECTOR, b"\0")
            if x != y and rng.random() < p:
                x = y
                taken += 1
            elif x != y:
                kept += 1
            out[s:s + SECTOR] = x[:size - s]
    return bytes(out), taken, kept


def materialize(journal, dest, real=None, rng=None):
    """Writes the image into dest (which must not exist); returns statistics."""
    stats = {"names applied": 0, "names lost": 0, "files": 0, "files torn": 0,
             "sectors new": 0, "sectors old": 0}
    prefix = 0
    if rng is not None:
        n = sum(1 for t, _, _ in journal.ops if t != "S")
        prefix = rng.choice([0, n, rng.randint(0, n)])
    tree, stats["names applied"], stats["names lost"] = journal.tree(prefix)
    real_by_ino = {}
    if real is not None:
        for d, _, files in os.walk(real):
            for name in files:
                p = os.path.join(d, name)
                real_by_ino[os.lstat(p).st_ino] = p

    def build(did, path, depth):
        if depth > 64:
            raise AssertionError("shim journal: directories nested too deep (a cycle?)")
        os.mkdir(path)
        for name, i in sorted(tree[did].items()):
            p = os.path.join(path, name)
            if journal.kind[i] == "D":
                build(i, p, depth + 1)
                continue
            with open(os.path.join(journal.shadow, "files", str(i)), "rb") as f:
                data = f.read()
            ino = journal.ino[i]
            if rng is not None and journal.latest.get(ino) == i and ino in real_by_ino:
                with open(real_by_ino[ino], "rb") as f:
                    now = f.read()
                if now != data:
                    data, taken, kept = tear(data, now, rng)
                    stats["files torn"] += 1
                    stats["sectors new"] += taken
                    stats["sectors old"] += kept
            with open(p, "wb") as f:
                f.write(data)
            stats["files"] += 1

    build(journal.root, dest, 0)
    return stats


def cut(data, shadow, rng=None, keep=None):
    """Replaces data by its image after a power cut (strict, or torn with rng). With keep,
    the directory before the cut and the shadow are moved to keep/real and keep/shadow
    (for a post-mortem), else removed."""
    journal = Journal(shadow)
    if journal.errors:
        raise AssertionError("the power-cut shim gave up: " + "; ".join(journal.errors))
    image = data.rstrip("/") + ".image"
    shutil.rmtree(image, ignore_errors=True)
    stats = materialize(journal, image, real=data if rng is not None else None, rng=rng)
    stats["processes"] = journal.processes
    stats["file syncs"] = journal.file_syncs
    stats["dir syncs"] = sum(1 for t, _, _ in journal.ops if t == "S")
    if keep:
        shutil.rmtree(keep, ignore_errors=True)
        os.makedirs(keep)
        os.rename(data, os.path.join(keep, "real"))
        os.rename(shadow, os.path.join(keep, "shadow"))
    else:
        shutil.rmtree(data)
        shutil.rmtree(shadow)
    os.rename(image, data)
    return stats
