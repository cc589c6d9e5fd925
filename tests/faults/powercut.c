/*
 * powercut: an LD_PRELOAD shim that keeps, beside a directory a process
 * writes, the part of it a power cut would leave behind (docs/testing.md).
 *
 *   ANNALS_POWERCUT_DIR=<dir>       the directory watched (everything under it)
 *   ANNALS_POWERCUT_SHADOW=<dir>    where the durable state is kept
 *   ANNALS_POWERCUT_VERIFY=1        after every file sync, compare the whole file
 *                                   with its durable copy (finds writes the shim
 *                                   missed; slow)
 *
 * The process reads and writes the real files as usual. The shim keeps
 *
 *   SHADOW/files/<id>   the durable content of file record <id>: what the last
 *                       fsync/fdatasync (or O_SYNC/O_DSYNC write) made durable
 *   SHADOW/journal      one line per change of a name and per sync (below)
 *
 * Content: for every file it tracks the byte ranges written since the last sync
 * (write, pwrite, writev, pwritev(2), ftruncate, truncate, fallocate,
 * posix_fallocate); a sync copies those ranges and the size from the real file
 * into files/<id>. A file written through something the shim cannot follow (a
 * stdio FILE, a shared writable mapping, copy_file_range, sendfile) is
 * "opaque": its sync copies the whole file.
 *
 * Names: a name created, removed or renamed under the watched directory is
 * durable only once its directory is fsync'd (a rename: the destination's).
 * The shim does not apply names itself; it journals each change and each
 * directory sync, and the harness (tests/faults/powercut.py) computes the
 * image from the journal after the cut: the strict image (only what a
 * directory sync covered) or a torn one.
 *
 * Journal lines (names in hex):
 *   P <pid> fresh|continue     a process started the shim
 *   R <dir>                    the root record (the watched directory)
 *   D <id> <ino> / F <id> <ino>    a directory / file record
 *   E <dir> <id> <name>        an entry present at the start (durable)
 *   C <dir> <id> <name>        created (open O_CREAT, mkdir, link)
 *   U <dir> <id> <name>        removed (unlink, rmdir)
 *   N <from> <to> <id> <old> <new>   renamed
 *   S <dir>                    directory fsync'd: earlier C/U of <dir> and N
 *                              into <dir> are durable
 *   Y <id> <size>              file synced (informational)
 *   X <message>                the shim gave up (unsupported operation)
 *
 * When the journal already exists (a previous process was killed: its page
 * cache survives, its durable state too), the shim continues it: records are
 * found again by inode, and whatever differs between a real file and its
 * durable copy is dirty again, to be made durable by the next sync.
 *
 * Only the process that started with the variables runs the shim: it removes
 * them (and LD_PRELOAD) from its environment.
 *
 * Unsupported operations on watched paths (symlinks, device nodes, rename
 * exchange, msync, sync, syncfs, renames across the watched boundary) abort the
 * process with a message rather than being modelled wrongly. sync_file_range
 * makes nothing durable (no metadata, no device flush; see its manual).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#undef _FORTIFY_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* glibc's fortify entry points and a few others headers do not declare here. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

/* ---- the real functions and raw system calls ----------------------------- */

static void *real_sym(void **slot, const char *name)
{
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!p) {
        p = dlsym(RTLD_NEXT, name);
        if (!p) {
            static const char m[] = "powercut: dlsym failed\n";
            (void)syscall(SYS_write, 2, m, sizeof m - 1);
            abort();
        }
        __atomic_store_n(slot, p, __ATOMIC_RELEASE);
    }
    return p;
}

#define REAL(name) ((__typeof__(&name))real_sym(&real_ptr_##name, #name))
#define DECLARE_REAL(name) static void *real_ptr_##name

DECLARE_REAL(openat);
DECLARE_REAL(fopen);
DECLARE_REAL(fopen64);
DECLARE_REAL(freopen);
DECLARE_REAL(freopen64);
DECLARE_REAL(fdopen);
DECLARE_REAL(mkdirat);
DECLARE_REAL(unlinkat);
DECLARE_REAL(remove);
DECLARE_REAL(renameat);
DECLARE_REAL(renameat2);
DECLARE_REAL(linkat);
DECLARE_REAL(symlink);
DECLARE_REAL(symlinkat);
DECLARE_REAL(mknod);
DECLARE_REAL(mknodat);
DECLARE_REAL(write);
DECLARE_REAL(pwrite);
DECLARE_REAL(pwrite64);
DECLARE_REAL(writev);
DECLARE_REAL(pwritev);
DECLARE_REAL(pwritev64);
DECLARE_REAL(pwritev2);
DECLARE_REAL(pwritev64v2);
DECLARE_REAL(ftruncate);
DECLARE_REAL(ftruncate64);
DECLARE_REAL(truncate);
DECLARE_REAL(truncate64);
DECLARE_REAL(fallocate);
DECLARE_REAL(fallocate64);
DECLARE_REAL(posix_fallocate);
DECLARE_REAL(posix_fallocate64);
DECLARE_REAL(copy_file_range);
DECLARE_REAL(sendfile);
DECLARE_REAL(sendfile64);
DECLARE_REAL(mmap);
DECLARE_REAL(mmap64);
DECLARE_REAL(msync);
DECLARE_REAL(fsync);
DECLARE_REAL(fdatasync);
DECLARE_REAL(sync);
DECLARE_REAL(syncfs);

/* The shim's own I/O goes around every wrapper. */
static int sys_open(const char *path, int flags, mode_t mode)
{
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags | O_CLOEXEC, mode);
}
static int sys_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}
static ssize_t sys_pread(int fd, void *buf, size_t n, uint64_t off)
{
    ssize_t r;
    do
        r = syscall(SYS_pread64, fd, buf, n, (off_t)off);
    while (r < 0 && errno == EINTR);
    return r;
}
static int sys_pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
    const char *p = buf;
    while (n) {
        ssize_t r = syscall(SYS_pwrite64, fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}
static int sys_write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t r = syscall(SYS_write, fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}
static int sys_ftruncate(int fd, uint64_t len)
{
    return (int)syscall(SYS_ftruncate, fd, (off_t)len);
}

/* ---- state ---------------------------------------------------------------- */

typedef struct range {
    uint64_t a, b; /* [a, b) */
} range;

typedef struct rec {
    uint64_t id;
    dev_t dev;
    ino_t ino;
    bool dir;
    pthread_mutex_t mu; /* the fields below; held around the real write too */
    range *dirty;       /* sorted, disjoint, not adjacent */
    size_t n, cap;
    uint64_t min_size; /* smallest size since the last sync (truncations) */
    bool opaque;       /* written behind the shim's back: sync copies it all */
    struct rec *next;  /* hash chain */
} rec;

#define NBUCKET 4096
#define NO_TRUNC UINT64_MAX

static bool active;
static bool verify;
static char *g_dir;    /* realpath of the watched directory */
static char *g_shadow; /* the shadow directory */
static int g_journal = -1;
static uint64_t g_next_id = 1;
/* Order: g_mu > rec.mu > j_mu. g_mu guards the table, the journal and every change
 * of a name under the watched directory (from the check before it to its
 * journal line). */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t j_mu = PTHREAD_MUTEX_INITIALIZER; /* the journal's fd; a leaf */
static rec *g_tab[NBUCKET];

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
    char msg[1024], line[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int n = snprintf(line, sizeof line, "powercut: %s\n", msg);
    (void)sys_write_full(2, line, (size_t)n);
    if (g_journal >= 0) {
        n = snprintf(line, sizeof line, "X %s\n", msg);
        (void)sys_write_full(g_journal, line, (size_t)n);
    }
    abort();
}

static void journal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void journal(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof line - 1)
        die("journal line too long");
    line[n++] = '\n';
    pthread_mutex_lock(&j_mu);
    int rc = sys_write_full(g_journal, line, (size_t)n);
    pthread_mutex_unlock(&j_mu);
    if (rc != 0)
        die("journal write: %s", strerror(errno));
}

static void hex(const char *s, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (; *s; s++) {
        *out++ = d[(unsigned char)*s >> 4];
        *out++ = d[(unsigned char)*s & 15];
    }
    *out = '\0';
}

static size_t bucket(dev_t dev, ino_t ino)
{
    uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev;
    return (size_t)(h >> 40) % NBUCKET;
}

/* g_mu held */
static rec *find(dev_t dev, ino_t ino)
{
    for (rec *r = g_tab[bucket(dev, ino)]; r; r = r->next)
        if (r->dev == dev && r->ino == ino)
            return r;
    return NULL;
}

static void shadow_path(uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/files/%" PRIu64, g_shadow, id);
}

/* g_mu held. A new record for an inode (replacing a former one that had the
 * inode number: inodes are reused). Files get an empty durable copy. */
static rec *rec_new(const struct stat *st, uint64_t id)
{
    rec *r = calloc(1, sizeof *r);
    if (!r)
        die("out of memory");
    r->id = id ? id : g_next_id++;
    if (r->id >= g_next_id)
        g_next_id = r->id + 1;
    r->dev = st->st_dev;
    r->ino = st->st_ino;
    r->dir = S_ISDIR(st->st_mode);
    r->min_size = NO_TRUNC;
    pthread_mutex_init(&r->mu, NULL);
    rec **pp = &g_tab[bucket(r->dev, r->ino)];
    for (rec **q = pp; *q; q = &(*q)->next) {
        if ((*q)->dev == r->dev && (*q)->ino == r->ino) {
            *q = (*q)->next; /* the old record lives on (others may hold it) */
            break;
        }
    }
    r->next = *pp;
    *pp = r;
    return r;
}

static rec *rec_create(const struct stat *st)
{
    rec *r = rec_new(st, 0);
    if (r->dir) {
        journal("D %" PRIu64 " %" PRIu64, r->id, (uint64_t)r->ino);
    } else {
        char p[PATH_MAX];
        shadow_path(r->id, p, sizeof p);
        int fd = sys_open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
            die("create %s: %s", p, strerror(errno));
        sys_close(fd);
        journal("F %" PRIu64 " %" PRIu64, r->id, (uint64_t)r->ino);
    }
    return r;
}

/* r->mu held */
static void add_dirty(rec *r, uint64_t a, uint64_t b)
{
    if (a >= b)
        return;
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->dirty[mid].b < a)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t i = lo, j = lo;
    while (j < r->n && r->dirty[j].a <= b) {
        if (r->dirty[j].a < a)
            a = r->dirty[j].a;
        if (r->dirty[j].b > b)
            b = r->dirty[j].b;
        j++;
    }
    if (i == j) {
        if (r->n == r->cap) {
            size_t nc = r->cap ? r->cap * 2 : 16;
            range *nd = realloc(r->dirty, nc * sizeof *nd);
            if (!nd)
                die("out of memory");
            r->dirty = nd;
            r->cap = nc;
        }
        memmove(r->dirty + i + 1, r->dirty + i, (r->n - i) * sizeof *r->dirty);
        r->n++;
    } else {
        memmove(r->dirty + i + 1, r->dirty + j, (r->n - j) * sizeof *r->dirty);
        r->n -= j - i - 1;
    }
    r->dirty[i].a = a;
    r->dirty[i].b = b;
}

/* ---- making a file durable --------------------------------------------------- */

static int readable_fd(int fd, bool *opened)
{
    *opened = false;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_ACCMODE) != O_WRONLY)
        return fd;
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    int r = sys_open(p, O_RDONLY, 0);
    if (r < 0)
        die("reopen %s for reading: %s", p, strerror(errno));
    *opened = true;
    return r;
}

static void compare_all(rec *r, int rfd, int sfd, uint64_t size)
{
    enum { B = 1 << 16 };
    char *x = malloc(B), *y = malloc(B);
    struct stat st;
    if (!x || !y)
        die("out of memory");
    if (fstat(sfd, &st) != 0 || (uint64_t)st.st_size != size)
        die("verify: record %" PRIu64 ": durable size %lld, real %" PRIu64, r->id,
            (long long)st.st_size, size);
    for (uint64_t off = 0; off < size;) {
        size_t n = size - off < B ? (size_t)(size - off) : B;
        if (sys_pread(rfd, x, n, off) != (ssize_t)n || sys_pread(sfd, y, n, off) != (ssize_t)n)
            die("verify: record %" PRIu64 ": short read", r->id);
        if (memcmp(x, y, n) != 0) {
            size_t i = 0;
            while (x[i] == y[i])
                i++;
            die("verify: record %" PRIu64 " (inode %" PRIu64 "): durable copy differs at offset "
                "%" PRIu64 ": a write the shim did not see",
                r->id, (uint64_t)r->ino, off + i);
        }
        off += n;
    }
    free(x);
    free(y);
}

/* r->mu held. Copies what changed in fd's file since the last sync into the
 * durable copy. A kill in the middle leaves part of it copied: an fsync that
 * had not returned when the power went. */
static void sync_rec(rec *r, int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        die("fstat: %s", strerror(errno));
    uint64_t size = (uint64_t)st.st_size;
    char p[PATH_MAX];
    shadow_path(r->id, p, sizeof p);
    int sfd = sys_open(p, O_RDWR, 0);
    if (sfd < 0)
        die("open %s: %s", p, strerror(errno));
    bool opened;
    int rfd = readable_fd(fd, &opened);
    if (r->opaque) {
        r->n = 0;
        add_dirty(r, 0, size);
        r->min_size = 0;
    }
    uint64_t cut = r->min_size < size ? r->min_size : size;
    struct stat sst;
    if (fstat(sfd, &sst) != 0)
        die("fstat %s: %s", p, strerror(errno));
    if ((uint64_t)sst.st_size > cut && sys_ftruncate(sfd, cut) != 0)
        die("truncate %s: %s", p, strerror(errno));
    enum { B = 1 << 18 };
    char *buf = malloc(B);
    if (!buf)
        die("out of memory");
    for (size_t i = 0; i < r->n; i++) {
        uint64_t a = r->dirty[i].a, b = r->dirty[i].b < size ? r->dirty[i].b : size;
        while (a < b) {
            size_t n = b - a < B ? (size_t)(b - a) : B;
            ssize_t got = sys_pread(rfd, buf, n, a);
            if (got < 0)
                die("read for sync: %s", strerror(errno));
            if (got == 0)
                break;
            if (sys_pwrite_full(sfd, buf, (size_t)got, a) != 0)
                die("write %s: %s", p, strerror(errno));
            a += (uint64_t)got;
        }
    }
    free(buf);
    if (sys_ftruncate(sfd, size) != 0)
        die("truncate %s: %s", p, strerror(errno));
    r->n = 0;
    r->min_size = NO_TRUNC;
    if (verify)
        compare_all(r, rfd, sfd, size);
    if (opened)
        sys_close(rfd);
    sys_close(sfd);
    journal("Y %" PRIu64 " %" PRIu64, r->id, size);
}

/* ---- names ------------------------------------------------------------------ */

static bool under_watched(const char *real)
{
    size_t n = strlen(g_dir);
    return strncmp(real, g_dir, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

static bool fd_under_watched(int fd)
{
    char p[64], target[PATH_MAX];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(p, target, sizeof target - 1);
    if (n < 0)
        return false;
    target[n] = '\0';
    return under_watched(target);
}

/*
 * The directory record holding path's last component (relative to dirfd), and
 * that component. NULL when the directory is not watched, or when path has no
 * last component to create or remove ("/", ".", "..").
 */
static rec *parent_of(int dirfd, const char *path, char *name)
{
    if (!active || !path)
        return NULL;
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return NULL;
    memcpy(buf, path, len + 1);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    char *slash = strrchr(buf, '/');
    const char *dir, *base;
    if (!slash) {
        dir = ".";
        base = buf;
    } else if (slash == buf) {
        dir = "/";
        base = buf + 1;
    } else {
        *slash = '\0';
        dir = buf;
        base = slash + 1;
    }
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strlen(base) > NAME_MAX)
        return NULL;
    struct stat st;
    if (fstatat(dirfd, dir, &st, 0) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    pthread_mutex_lock(&g_mu);
    rec *r = find(st.st_dev, st.st_ino);
    pthread_mutex_unlock(&g_mu);
    if (!r || !r->dir)
        return NULL;
    strcpy(name, base);
    return r;
}

/* g_mu held; after a successful open of name in parent. */
static void opened(rec *parent, const char *name, bool existed, int fd, bool trunc, bool opaque)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        die("open of %s: not a regular file or directory", name);
    rec *r = find(st.st_dev, st.st_ino);
    if (!existed) {
        char h[2 * NAME_MAX + 1];
        r = rec_create(&st);
        hex(name, h);
        journal("C %" PRIu64 " %" PRIu64 " %s", parent->id, r->id, h);
    } else if (!r) {
        die("open of %s: a file the shim never saw created", name);
    }
    if ((trunc && existed && !r->dir) || opaque) {
        pthread_mutex_lock(&r->mu);
        if (trunc && existed)
            r->min_size = 0;
        if (opaque)
            r->opaque = true;
        pthread_mutex_unlock(&r->mu);
    }
}

static int do_open(int dirfd, const char *path, int flags, mode_t mode)
{
    char name[NAME_MAX + 1];
    rec *parent = parent_of(dirfd, path, name);
    if (!parent)
        return REAL(openat)(dirfd, path, flags, mode);
    pthread_mutex_lock(&g_mu);
    struct stat pre;
    bool existed = fstatat(dirfd, path, &pre, AT_SYMLINK_NOFOLLOW) == 0;
    int fd = REAL(openat)(dirfd, path, flags, mode);
    int e = errno;
    if (fd >= 0)
        opened(parent, name, existed, fd, (flags & O_TRUNC) != 0, false);
    pthread_mutex_unlock(&g_mu);
    errno = e;
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_open(AT_FDCWD, path, flags, m);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_open(AT_FDCWD, path, flags, m);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_open(dirfd, path, flags, m);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_open(dirfd, path, flags, m);
}

int __open_2(const char *path, int flags)
{
    return do_open(AT_FDCWD, path, flags, 0);
}

int __open64_2(const char *path, int flags)
{
    return do_open(AT_FDCWD, path, flags, 0);
}

int __openat_2(int dirfd, const char *path, int flags)
{
    return do_open(dirfd, path, flags, 0);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
    return do_open(dirfd, path, flags, 0);
}

int creat(const char *path, mode_t mode)
{
    return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int creat64(const char *path, mode_t mode)
{
    return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

static bool mode_writes(const char *mode)
{
    return mode && (strchr(mode, 'w') || strchr(mode, 'a') || strchr(mode, '+'));
}

static FILE *do_fopen(FILE *(*realf)(const char *, const char *), const char *path,
                      const char *mode)
{
    char name[NAME_MAX + 1];
    rec *parent = parent_of(AT_FDCWD, path, name);
    if (!parent)
        return realf(path, mode);
    pthread_mutex_lock(&g_mu);
    struct stat pre;
    bool existed = fstatat(AT_FDCWD, path, &pre, AT_SYMLINK_NOFOLLOW) == 0;
    FILE *f = realf(path, mode);
    int e = errno;
    if (f)
        opened(parent, name, existed, fileno(f), mode && strchr(mode, 'w'), mode_writes(mode));
    pthread_mutex_unlock(&g_mu);
    errno = e;
    return f;
}

FILE *fopen(const char *path, const char *mode)
{
    return do_fopen(REAL(fopen), path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
    return do_fopen(REAL(fopen64), path, mode);
}

FILE *freopen(const char *path, const char *mode, FILE *f)
{
    char name[NAME_MAX + 1];
    if (parent_of(AT_FDCWD, path, name))
        die("freopen of %s: not modelled", path);
    return REAL(freopen)(path, mode, f);
}

FILE *freopen64(const char *path, const char *mode, FILE *f)
{
    char name[NAME_MAX + 1];
    if (parent_of(AT_FDCWD, path, name))
        die("freopen64 of %s: not modelled", path);
    return REAL(freopen64)(path, mode, f);
}

static rec *rec_of_fd(int fd)
{
    struct stat st;
    if (!active || fd < 0 || fstat(fd, &st) != 0 || (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)))
        return NULL;
    pthread_mutex_lock(&g_mu);
    rec *r = find(st.st_dev, st.st_ino);
    pthread_mutex_unlock(&g_mu);
    return r;
}

static void make_opaque(int fd)
{
    rec *r = rec_of_fd(fd);
    if (r && !r->dir) {
        pthread_mutex_lock(&r->mu);
        r->opaque = true;
        pthread_mutex_unlock(&r->mu);
    }
}

FILE *fdopen(int fd, const char *mode)
{
    FILE *f = REAL(fdopen)(fd, mode);
    if (f && mode_writes(mode)) {
        int e = errno;
        make_opaque(fd);
        errno = e;
    }
    return f;
}

static int do_mkdir(int dirfd, const char *path, mode_t mode)
{
    char name[NAME_MAX + 1], h[2 * NAME_MAX + 1];
    rec *parent = parent_of(dirfd, path, name);
    if (!parent)
        return REAL(mkdirat)(dirfd, path, mode);
    pthread_mutex_lock(&g_mu);
    int rc = REAL(mkdirat)(dirfd, path, mode);
    int e = errno;
    struct stat st;
    if (rc == 0) {
        if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) != 0)
            die("stat of the new directory %s: %s", path, strerror(errno));
        rec *r = rec_create(&st);
        hex(name, h);
        journal("C %" PRIu64 " %" PRIu64 " %s", parent->id, r->id, h);
    }
    pthread_mutex_unlock(&g_mu);
    errno = e;
    return rc;
}

int mkdir(const char *path, mode_t mode)
{
    return do_mkdir(AT_FDCWD, path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
    return do_mkdir(dirfd, path, mode);
}

static int do_unlink(int dirfd, const char *path, int flags)
{
    char name[NAME_MAX + 1], h[2 * NAME_MAX + 1];
    rec *parent = parent_of(dirfd, path, name);
    if (!parent)
        return REAL(unlinkat)(dirfd, path, flags);
    pthread_mutex_lock(&g_mu);
    struct stat pre;
    rec *r =
        fstatat(dirfd, path, &pre, AT_SYMLINK_NOFOLLOW) == 0 ? find(pre.st_dev, pre.st_ino) : NULL;
    int rc = REAL(unlinkat)(dirfd, path, flags);
    int e = errno;
    if (rc == 0) {
        if (!r)
            die("unlink of %s: a name the shim never saw created", path);
        hex(name, h);
        journal("U %" PRIu64 " %" PRIu64 " %s", parent->id, r->id, h);
    }
    pthread_mutex_unlock(&g_mu);
    errno = e;
    return rc;
}

int unlink(const char *path)
{
    return do_unlink(AT_FDCWD, path, 0);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    return do_unlink(dirfd, path, flags);
}

int rmdir(const char *path)
{
    return do_unlink(AT_FDCWD, path, AT_REMOVEDIR);
}

int remove(const char *path)
{
    char name[NAME_MAX + 1];
    if (!parent_of(AT_FDCWD, path, name))
        return REAL(remove)(path);
    struct stat st;
    if (lstat(path, &st) != 0)
        return -1;
    return do_unlink(AT_FDCWD, path, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
}

static int do_rename(int ofd, const char *old, int nfd, const char *new, unsigned flags)
{
    char oname[NAME_MAX + 1], nname[NAME_MAX + 1];
    rec *op = parent_of(ofd, old, oname), *np = parent_of(nfd, new, nname);
    if (!op && !np)
        return REAL(renameat2)(ofd, old, nfd, new, flags);
    if (!op || !np)
        die("rename %s -> %s crosses the watched directory's boundary", old, new);
    if (flags & ~(unsigned)RENAME_NOREPLACE)
        die("rename %s -> %s with flags %#x: not modelled", old, new, flags);
    pthread_mutex_lock(&g_mu);
    struct stat pre;
    rec *r =
        fstatat(ofd, old, &pre, AT_SYMLINK_NOFOLLOW) == 0 ? find(pre.st_dev, pre.st_ino) : NULL;
    int rc =
        flags ? REAL(renameat2)(ofd, old, nfd, new, flags) : REAL(renameat)(ofd, old, nfd, new);
    int e = errno;
    if (rc == 0) {
        if (!r)
            die("rename of %s: a name the shim never saw created", old);
        char ho[2 * NAME_MAX + 1], hn[2 * NAME_MAX + 1];
        hex(oname, ho);
        hex(nname, hn);
        journal("N %" PRIu64 " %" PRIu64 " %" PRIu64 " %s %s", op->id, np->id, r->id, ho, hn);
    }
    pthread_mutex_unlock(&g_mu);
    errno = e;
    return rc;
}

int rename(const char *old, const char *new)
{
    return do_rename(AT_FDCWD, old, AT_FDCWD, new, 0);
}

int renameat(int ofd, const char *old, int nfd, const char *new)
{
    return do_rename(ofd, old, nfd, new, 0);
}

int renameat2(int ofd, const char *old, int nfd, const char *new, unsigned flags)
{
    return do_rename(ofd, old, nfd, new, flags);
}

static int do_link(int ofd, const char *old, int nfd, const char *new, int flags)
{
    char name[NAME_MAX + 1], h[2 * NAME_MAX + 1];
    rec *np = parent_of(nfd, new, name);
    if (!np)
        return REAL(linkat)(ofd, old, nfd, new, flags);
    pthread_mutex_lock(&g_mu);
    struct stat pre;
    rec *r = fstatat(ofd, old, &pre, (flags & AT_SYMLINK_FOLLOW) ? 0 : AT_SYMLINK_NOFOLLOW) == 0
                 ? find(pre.st_dev, pre.st_ino)
                 : NULL;
    int rc = REAL(linkat)(ofd, old, nfd, new, flags);
    int e = errno;
    if (rc == 0) {
        if (!r)
            die("link of %s: a file the shim does not track", old);
        hex(name, h);
        journal("C %" PRIu64 " %" PRIu64 " %s", np->id, r->id, h);
    }
    pthread_mutex_unlock(&g_mu);
    errno = e;
    return rc;
}

int link(const char *old, const char *new)
{
    return do_link(AT_FDCWD, old, AT_FDCWD, new, 0);
}

int linkat(int ofd, const char *old, int nfd, const char *new, int flags)
{
    return do_link(ofd, old, nfd, new, flags);
}

static void refuse(int dirfd, const char *path, const char *what)
{
    char name[NAME_MAX + 1];
    if (parent_of(dirfd, path, name))
        die("%s of %s: not modelled", what, path);
}

int symlink(const char *target, const char *path)
{
    refuse(AT_FDCWD, path, "symlink");
    return REAL(symlink)(target, path);
}

int symlinkat(const char *target, int dirfd, const char *path)
{
    refuse(dirfd, path, "symlink");
    return REAL(symlinkat)(target, dirfd, path);
}

int mknod(const char *path, mode_t mode, dev_t dev)
{
    refuse(AT_FDCWD, path, "mknod");
    return REAL(mknod)(path, mode, dev);
}

int mknodat(int dirfd, const char *path, mode_t mode, dev_t dev)
{
    refuse(dirfd, path, "mknod");
    return REAL(mknodat)(dirfd, path, mode, dev);
}

/* ---- content ---------------------------------------------------------------- */

/* r->mu held; after `w` bytes were written at `off` (-1: at the file position,
 * which the write moved past them). */
static void wrote(rec *r, int fd, int64_t off, size_t w, bool force_sync, bool append)
{
    int fl = fcntl(fd, F_GETFL);
    uint64_t end;
    if (append || (fl >= 0 && (fl & O_APPEND))) {
        struct stat st; /* appended, whatever the offset said */
        if (fstat(fd, &st) != 0)
            die("fstat: %s", strerror(errno));
        end = (uint64_t)st.st_size;
    } else if (off < 0) {
        off_t pos = lseek(fd, 0, SEEK_CUR);
        if (pos < 0)
            die("lseek: %s", strerror(errno));
        end = (uint64_t)pos;
    } else {
        end = (uint64_t)off + w;
    }
    add_dirty(r, end - w, end);
    if (force_sync || (fl >= 0 && (fl & O_DSYNC)))
        sync_rec(r, fd);
}

#define WRITE_WRAPPER(call, off_expr, sync_expr, append_expr)                                      \
    rec *r = rec_of_fd(fd);                                                                        \
    if (!r || r->dir)                                                                              \
        return call;                                                                               \
    pthread_mutex_lock(&r->mu);                                                                    \
    ssize_t w = call;                                                                              \
    int e = errno;                                                                                 \
    if (w > 0)                                                                                     \
        wrote(r, fd, off_expr, (size_t)w, sync_expr, append_expr);                                 \
    pthread_mutex_unlock(&r->mu);                                                                  \
    errno = e;                                                                                     \
    return w

ssize_t write(int fd, const void *buf, size_t n)
{
    WRITE_WRAPPER(REAL(write)(fd, buf, n), -1, false, false);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    WRITE_WRAPPER(REAL(pwrite)(fd, buf, n, off), off, false, false);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    WRITE_WRAPPER(REAL(pwrite64)(fd, buf, n, off), off, false, false);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    WRITE_WRAPPER(REAL(writev)(fd, iov, n), -1, false, false);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    WRITE_WRAPPER(REAL(pwritev)(fd, iov, n, off), off, false, false);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off)
{
    WRITE_WRAPPER(REAL(pwritev64)(fd, iov, n, off), off, false, false);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    WRITE_WRAPPER(REAL(pwritev2)(fd, iov, n, off, flags), off,
                  (flags & (RWF_DSYNC | RWF_SYNC)) != 0, (flags & RWF_APPEND) != 0);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int n, off64_t off, int flags)
{
    WRITE_WRAPPER(REAL(pwritev64v2)(fd, iov, n, off, flags), off,
                  (flags & (RWF_DSYNC | RWF_SYNC)) != 0, (flags & RWF_APPEND) != 0);
}

/* r->mu held; after the file's size was set to len. */
static void resized(rec *r, uint64_t len)
{
    if (len < r->min_size)
        r->min_size = len;
}

#define RESIZE_WRAPPER(call, len)                                                                  \
    rec *r = rec_of_fd(fd);                                                                        \
    if (!r || r->dir)                                                                              \
        return call;                                                                               \
    pthread_mutex_lock(&r->mu);                                                                    \
    int rc = call;                                                                                 \
    int e = errno;                                                                                 \
    if (rc == 0)                                                                                   \
        resized(r, (uint64_t)(len));                                                               \
    pthread_mutex_unlock(&r->mu);                                                                  \
    errno = e;                                                                                     \
    return rc

int ftruncate(int fd, off_t len)
{
    RESIZE_WRAPPER(REAL(ftruncate)(fd, len), len);
}

int ftruncate64(int fd, off64_t len)
{
    RESIZE_WRAPPER(REAL(ftruncate64)(fd, len), len);
}

static int do_truncate(int (*realf)(const char *, off_t), const char *path, off_t len)
{
    struct stat st;
    rec *r = NULL;
    if (active && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        pthread_mutex_lock(&g_mu);
        r = find(st.st_dev, st.st_ino);
        pthread_mutex_unlock(&g_mu);
    }
    if (!r)
        return realf(path, len);
    pthread_mutex_lock(&r->mu);
    int rc = realf(path, len);
    int e = errno;
    if (rc == 0)
        resized(r, (uint64_t)len);
    pthread_mutex_unlock(&r->mu);
    errno = e;
    return rc;
}

int truncate(const char *path, off_t len)
{
    return do_truncate(REAL(truncate), path, len);
}

int truncate64(const char *path, off64_t len)
{
    return do_truncate(REAL(truncate64), path, len);
}

/* r->mu held; fallocate changed [off, off+len) (or, collapsing or inserting,
 * everything from off). */
static void allocated(rec *r, int mode, uint64_t off, uint64_t len)
{
#ifdef FALLOC_FL_COLLAPSE_RANGE
    if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) {
        add_dirty(r, off, UINT64_MAX);
        resized(r, off);
        return;
    }
#endif
    (void)mode;
    add_dirty(r, off, off + len);
}

#define ALLOC_WRAPPER(call, ok, mode)                                                              \
    rec *r = rec_of_fd(fd);                                                                        \
    if (!r || r->dir)                                                                              \
        return call;                                                                               \
    pthread_mutex_lock(&r->mu);                                                                    \
    int rc = call;                                                                                 \
    int e = errno;                                                                                 \
    if (ok)                                                                                        \
        allocated(r, mode, (uint64_t)off, (uint64_t)len);                                          \
    pthread_mutex_unlock(&r->mu);                                                                  \
    errno = e;                                                                                     \
    return rc

int fallocate(int fd, int mode, off_t off, off_t len)
{
    ALLOC_WRAPPER(REAL(fallocate)(fd, mode, off, len), rc == 0, mode);
}

int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
    ALLOC_WRAPPER(REAL(fallocate64)(fd, mode, off, len), rc == 0, mode);
}

int posix_fallocate(int fd, off_t off, off_t len)
{
    ALLOC_WRAPPER(REAL(posix_fallocate)(fd, off, len), rc == 0, 0);
}

int posix_fallocate64(int fd, off64_t off, off64_t len)
{
    ALLOC_WRAPPER(REAL(posix_fallocate64)(fd, off, len), rc == 0, 0);
}

ssize_t copy_file_range(int in, off64_t *in_off, int out, off64_t *out_off, size_t len,
                        unsigned flags)
{
    ssize_t r = REAL(copy_file_range)(in, in_off, out, out_off, len, flags);
    int e = errno;
    if (r > 0)
        make_opaque(out);
    errno = e;
    return r;
}

ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
    ssize_t r = REAL(sendfile)(out, in, off, n);
    int e = errno;
    if (r > 0)
        make_opaque(out);
    errno = e;
    return r;
}

ssize_t sendfile64(int out, int in, off64_t *off, size_t n)
{
    ssize_t r = REAL(sendfile64)(out, in, off, n);
    int e = errno;
    if (r > 0)
        make_opaque(out);
    errno = e;
    return r;
}

/* Writes through a shared mapping are not seen: the file's syncs copy it all.
 * (SQLite maps its -shm file, which it never syncs.) */
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p = REAL(mmap)(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED && fd >= 0 && (flags & MAP_SHARED) && (prot & PROT_WRITE)) {
        int e = errno;
        make_opaque(fd);
        errno = e;
    }
    return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    void *p = REAL(mmap64)(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED && fd >= 0 && (flags & MAP_SHARED) && (prot & PROT_WRITE)) {
        int e = errno;
        make_opaque(fd);
        errno = e;
    }
    return p;
}

/* ---- syncs ---------------------------------------------------------------- */

/* Every entry of a directory being synced must be one the shim saw created:
 * anything else was made behind its back (a path it does not interpose). */
static void check_entries(rec *d, int fd)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    int dfd = sys_open(p, O_RDONLY | O_DIRECTORY, 0);
    if (dfd < 0)
        die("reopen directory %s: %s", p, strerror(errno));
    DIR *dir = fdopendir(dfd);
    if (!dir)
        die("fdopendir: %s", strerror(errno));
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* removed meanwhile */
        pthread_mutex_lock(&g_mu);
        rec *r = find(st.st_dev, st.st_ino);
        pthread_mutex_unlock(&g_mu);
        if (!r)
            die("directory record %" PRIu64 " holds %s, which the shim never saw created", d->id,
                de->d_name);
    }
    closedir(dir);
}

static int do_sync(int fd, int (*realf)(int))
{
    struct stat st;
    if (!active || fd < 0 || fstat(fd, &st) != 0)
        return realf(fd);
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return realf(fd);
    pthread_mutex_lock(&g_mu);
    rec *r = find(st.st_dev, st.st_ino);
    pthread_mutex_unlock(&g_mu);
    if (!r) {
        if (fd_under_watched(fd))
            die("sync of fd %d: a file under the watched directory the shim never saw created", fd);
        return realf(fd);
    }
    int rc = realf(fd);
    if (rc != 0)
        return rc;
    int e = errno;
    if (r->dir) {
        check_entries(r, fd);
        pthread_mutex_lock(&g_mu);
        journal("S %" PRIu64, r->id);
        pthread_mutex_unlock(&g_mu);
    } else {
        pthread_mutex_lock(&r->mu);
        sync_rec(r, fd);
        pthread_mutex_unlock(&r->mu);
    }
    errno = e;
    return 0;
}

int fsync(int fd)
{
    return do_sync(fd, REAL(fsync));
}

int fdatasync(int fd)
{
    return do_sync(fd, REAL(fdatasync));
}

int msync(void *addr, size_t len, int flags)
{
    if (active && (flags & MS_SYNC))
        die("msync(MS_SYNC): not modelled");
    return REAL(msync)(addr, len, flags);
}

void sync(void)
{
    if (active)
        die("sync(): not modelled");
    REAL(sync)();
}

int syncfs(int fd)
{
    if (active)
        die("syncfs(): not modelled");
    return REAL(syncfs)(fd);
}

/* ---- start ----------------------------------------------------------------- */

static void copy_file(int dirfd, const char *name, uint64_t id)
{
    char p[PATH_MAX];
    int in = (int)syscall(SYS_openat, dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        die("open %s: %s", name, strerror(errno));
    shadow_path(id, p, sizeof p);
    int out = sys_open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0)
        die("create %s: %s", p, strerror(errno));
    enum { B = 1 << 18 };
    char *buf = malloc(B);
    if (!buf)
        die("out of memory");
    uint64_t off = 0;
    ssize_t n;
    while ((n = sys_pread(in, buf, B, off)) > 0) {
        if (sys_pwrite_full(out, buf, (size_t)n, off) != 0)
            die("write %s: %s", p, strerror(errno));
        off += (uint64_t)n;
    }
    if (n < 0)
        die("read %s: %s", name, strerror(errno));
    free(buf);
    sys_close(in);
    sys_close(out);
}

/* Marks dirty what differs between the real file and its durable copy (a
 * killed process's writes it never synced: still in the page cache). */
static void diff_file(int dirfd, const char *name, rec *r)
{
    char p[PATH_MAX];
    int in = (int)syscall(SYS_openat, dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    shadow_path(r->id, p, sizeof p);
    int sh = sys_open(p, O_RDONLY, 0);
    struct stat a, b;
    if (in < 0 || sh < 0 || fstat(in, &a) != 0 || fstat(sh, &b) != 0)
        die("diff %s: %s", name, strerror(errno));
    uint64_t ra = (uint64_t)a.st_size, sb = (uint64_t)b.st_size;
    if (sb > ra)
        resized(r, ra);
    enum { B = 1 << 12, N = 64 };
    static char x[B * N], y[B * N];
    for (uint64_t off = 0; off < ra; off += sizeof x) {
        ssize_t nx = sys_pread(in, x, sizeof x, off),
                ny = off < sb ? sys_pread(sh, y, sizeof y, off) : 0;
        if (nx < 0 || ny < 0)
            die("diff %s: %s", name, strerror(errno));
        for (ssize_t i = 0; i < nx; i += B) {
            ssize_t len = nx - i < B ? nx - i : B;
            if (ny < i + len || memcmp(x + i, y + i, (size_t)len) != 0)
                add_dirty(r, off + (uint64_t)i, off + (uint64_t)(i + len));
        }
    }
    sys_close(in);
    sys_close(sh);
}

/* Fresh: every entry becomes a durable record (E). Continuing: entries the
 * journal does not know (made by a killed process after its last journal
 * line) become pending creations (C), known files are diffed. */
static void walk(int dirfd, rec *d, bool fresh)
{
    DIR *dir = fdopendir(dirfd);
    if (!dir)
        die("fdopendir: %s", strerror(errno));
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            die("stat %s: %s", de->d_name, strerror(errno));
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            die("%s: only regular files and directories are modelled", de->d_name);
        char h[2 * NAME_MAX + 1];
        hex(de->d_name, h);
        rec *r = find(st.st_dev, st.st_ino);
        if (!r) {
            r = rec_create(&st);
            if (fresh && !r->dir)
                copy_file(dirfd, de->d_name, r->id);
            journal("%c %" PRIu64 " %" PRIu64 " %s", fresh ? 'E' : 'C', d->id, r->id, h);
        } else if (fresh) {
            journal("E %" PRIu64 " %" PRIu64 " %s", d->id, r->id, h); /* a hard link */
        } else if (!r->dir) {
            diff_file(dirfd, de->d_name, r);
        }
        if (S_ISDIR(st.st_mode)) {
            int sub = (int)syscall(SYS_openat, dirfd, de->d_name,
                                   O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
            if (sub < 0)
                die("open %s: %s", de->d_name, strerror(errno));
            walk(sub, r, fresh);
        }
    }
    closedir(dir);
}

/* Continuing: the records of the journal, by inode (the last one wins). */
static uint64_t replay(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        die("journal: %s", strerror(errno));
    char *text = malloc((size_t)st.st_size + 1);
    if (!text)
        die("out of memory");
    ssize_t n = sys_pread(fd, text, (size_t)st.st_size, 0);
    if (n < 0)
        die("journal: %s", strerror(errno));
    text[n] = '\0';
    uint64_t root = 0;
    dev_t dev = 0;
    struct stat dst;
    if (stat(g_dir, &dst) == 0)
        dev = dst.st_dev;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl)
            break; /* a line cut by the kill */
        *nl = '\0';
        uint64_t id, ino;
        if ((line[0] == 'D' || line[0] == 'F') &&
            sscanf(line + 1, " %" SCNu64 " %" SCNu64, &id, &ino) == 2) {
            struct stat fake = {
                .st_dev = dev, .st_ino = (ino_t)ino, .st_mode = line[0] == 'D' ? S_IFDIR : S_IFREG};
            rec_new(&fake, id);
        } else if (line[0] == 'R') {
            root = strtoull(line + 2, NULL, 10);
        }
    }
    free(text);
    return root;
}

__attribute__((constructor)) static void powercut_init(void)
{
    const char *dir = getenv("ANNALS_POWERCUT_DIR"), *shadow = getenv("ANNALS_POWERCUT_SHADOW");
    if (!dir || !shadow || !*dir || !*shadow)
        return;
    const char *v = getenv("ANNALS_POWERCUT_VERIFY");
    verify = v && strcmp(v, "1") == 0;
    g_dir = realpath(dir, NULL);
    g_shadow = strdup(shadow);
    if (!g_dir || !g_shadow)
        die("watched directory %s: %s", dir, strerror(errno));
    char p[PATH_MAX];
    (void)syscall(SYS_mkdirat, AT_FDCWD, g_shadow, 0700);
    snprintf(p, sizeof p, "%s/files", g_shadow);
    (void)syscall(SYS_mkdirat, AT_FDCWD, p, 0700);
    snprintf(p, sizeof p, "%s/journal", g_shadow);
    bool fresh = true;
    g_journal = sys_open(p, O_WRONLY | O_APPEND | O_CREAT | O_EXCL, 0600);
    if (g_journal < 0 && errno == EEXIST) {
        fresh = false;
        g_journal = sys_open(p, O_RDWR | O_APPEND, 0);
    }
    if (g_journal < 0)
        die("journal %s: %s", p, strerror(errno));
    /* Keep the journal's fd out of the way of the process's own numbers. */
    int high = fcntl(g_journal, F_DUPFD_CLOEXEC, 900);
    if (high >= 0) {
        sys_close(g_journal);
        g_journal = high;
    }
    journal("P %d %s", (int)getpid(), fresh ? "fresh" : "continue");
    struct stat st;
    if (stat(g_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        die("watched directory %s: not a directory", g_dir);
    rec *root;
    if (fresh) {
        root = rec_create(&st);
        journal("R %" PRIu64, root->id);
    } else {
        uint64_t rid = replay(g_journal);
        root = find(st.st_dev, st.st_ino);
        if (!root || root->id != rid)
            die("the journal in %s does not belong to %s (a new data directory needs a new "
                "shadow)",
                g_shadow, g_dir);
    }
    int dfd = sys_open(g_dir, O_RDONLY | O_DIRECTORY, 0);
    if (dfd < 0)
        die("open %s: %s", g_dir, strerror(errno));
    walk(dfd, root, fresh);
    /* One process per shadow: children and exec'd programs run without it. */
    unsetenv("LD_PRELOAD");
    unsetenv("ANNALS_POWERCUT_DIR");
    unsetenv("ANNALS_POWERCUT_SHADOW");
    active = true;
}
