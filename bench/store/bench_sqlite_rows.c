/*
 * bench_sqlite_rows: the alternative the embedded store did not take, one
 * SQLite row per entry, measured with the same shape as bench_store so the
 * figures in docs/storage.md compare like with like.
 *
 *   bench_sqlite_rows [-n entries] [-b batch] [-s body_bytes] [-l logs] [-u] [-D dir]
 *
 * One writer (SQLite has one), WAL, synchronous=FULL, one transaction per
 * batch (a group commit of `batch` entries); rows keyed (log, id); with -u
 * also a unique (log, insert_id) index, which dedup needs.
 */
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int main(int argc, char **argv)
{
    long total = 500000;
    int batch = 1000, body_len = 220, logs = 100, uniq = 0, opt;
    const char *base = "/tmp";
    while ((opt = getopt(argc, argv, "n:b:s:l:uD:")) != -1) {
        switch (opt) {
        case 'n':
            total = atol(optarg);
            break;
        case 'b':
            batch = atoi(optarg);
            break;
        case 's':
            body_len = atoi(optarg);
            break;
        case 'l':
            logs = atoi(optarg);
            break;
        case 'u':
            uniq = 1;
            break;
        case 'D':
            base = optarg;
            break;
        default:
            return 2;
        }
    }
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/ann-bench-sqlite-XXXXXX", base);
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/rows.db", dir);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return 1;
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL);
    sqlite3_exec(
        db,
        "CREATE TABLE entries(log INTEGER, id INTEGER, time INTEGER, itime INTEGER,"
        " severity INTEGER, insert_id TEXT, body BLOB, PRIMARY KEY(log, id)) WITHOUT ROWID",
        NULL, NULL, NULL);
    if (uniq)
        sqlite3_exec(db, "CREATE UNIQUE INDEX entries_iid ON entries(log, insert_id)", NULL, NULL,
                     NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "INSERT INTO entries VALUES(?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL);
    char *body = malloc((size_t)body_len);
    memset(body, 'x', (size_t)body_len);
    long *next_id = calloc((size_t)logs, sizeof *next_id);
    double t0 = now_s();
    long done = 0;
    for (long b = 0; done < total; b++) {
        int log = (int)(b % logs);
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        for (int i = 0; i < batch; i++) {
            char iid[64];
            snprintf(iid, sizeof iid, "%08lx-%04x-4000-8000-%012lx", (unsigned long)b, (unsigned)i,
                     (unsigned long)(b * batch + i));
            sqlite3_bind_int(st, 1, log);
            sqlite3_bind_int64(st, 2, ++next_id[log]);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)(b * batch + i));
            sqlite3_bind_int64(st, 4, 0);
            sqlite3_bind_int(st, 5, 300);
            sqlite3_bind_text(st, 6, iid, -1, SQLITE_TRANSIENT);
            sqlite3_bind_blob(st, 7, body, body_len, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE) {
                fprintf(stderr, "insert: %s\n", sqlite3_errmsg(db));
                return 1;
            }
            sqlite3_reset(st);
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            return 1;
        done += batch;
    }
    double el = now_s() - t0;
    printf("sqlite row per entry%s: %ld rows in %.2f s = %.0f rows/s (batch %d, body %dB, WAL, "
           "synchronous=FULL)\n",
           uniq ? " + unique insert_id index" : " keyed (log, id)", done, el, (double)done / el,
           batch, body_len);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(body);
    free(next_id);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
