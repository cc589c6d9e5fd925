/*
 * A deterministic generator of realistic CI-log text for the investigator benchmarks
 * (docs/bench.md, "Investigator queries"): build and test output, compiler warnings,
 * Maven and Go test runs, lint, deployments, and Java server logs whose stack traces are
 * one entry per line, with planted rare tokens.
 *
 * An archive is `logs` logs holding `entries` lines in all (sizes vary, lognormal), each
 * log one CI job run with labels job / env / branch / run. Everything (sizes, labels,
 * text, times, where the tokens are planted) follows from the spec alone, and every log
 * can be generated on its own, in any order, by any thread.
 */
#ifndef ANN_BENCH_INV_GEN_H
#define ANN_BENCH_INV_GEN_H

#include <stddef.h>
#include <stdint.h>

#define INV_LINE_MAX 1024 /* no generated line is longer (nor the NUL) */

typedef struct inv_spec {
    uint64_t seed;
    int64_t base_ns; /* the first log's first entry */
    int64_t span_ns; /* logs start spread over [base, base + span) */
    uint32_t logs;
    uint64_t entries; /* >= logs */
} inv_spec;

/* The planted tokens: each occurs exactly `count` times in an archive of at least
 * INV_PLANTS_MIN entries, as a whole word, nowhere else (not even in another case). */
typedef struct inv_token {
    const char *name; /* "rare10" */
    const char *text;
    uint32_t count;
} inv_token;

#define INV_N_TOKENS 3
extern const inv_token inv_tokens[INV_N_TOKENS];
#define INV_PLANTS_MIN 111
/* A word in many lines (a case-sensitive substring of roughly one line in ten). */
#define INV_COMMON_WORD "warning"

typedef struct inv_log {
    uint32_t index;
    int kind;
    int prefixed;    /* every line starts with the runner's timestamp */
    char job[48];    /* label job: "<project>-<stage>" */
    char env[16];    /* label env */
    char branch[64]; /* label branch */
    char run[16];    /* label run: the pipeline id */
    char source[72]; /* insert_id prefix, as `annals write --source`: "<job>-<run>" */
    char project[24];
    uint64_t first; /* global index of the log's first line */
    uint64_t n;     /* lines */
    int64_t start_ns;
    size_t plant_off, n_plants; /* into inv_archive.plants */
} inv_log;

typedef struct inv_plant {
    uint32_t log;
    uint64_t line; /* 0-based within the log */
    int token;     /* index into inv_tokens */
} inv_plant;

typedef struct inv_archive {
    inv_spec spec;
    inv_log *logs;
    inv_plant *plants; /* sorted by (log, line) */
    size_t n_plants;
} inv_archive;

/* Lays the archive out. Returns 0, or -1 when the spec is out of range. */
int inv_archive_open(inv_archive *a, const inv_spec *spec);
void inv_archive_close(inv_archive *a);

/* Generates one log's lines in order. */
typedef struct inv_gen {
    const inv_archive *a;
    const inv_log *log;
    uint64_t line; /* next line, 0-based */
    uint64_t rng;
    int64_t t_ns;
    size_t plant; /* next plant of this log */
    int burst;    /* lines left in the current multi-line burst */
    int burst_kind;
    int depth;  /* frames emitted in the current stack trace */
    int caused; /* a "Caused by" section was emitted */
    char cls[96], meth[32], pkg[64];
    char sha[41];
    int step;
} inv_gen;

void inv_gen_open(inv_gen *g, const inv_archive *a, uint32_t log);
/* Writes the next line (no newline) into buf[INV_LINE_MAX], NUL-terminated, and its time;
 * returns its length. Call exactly log->n times. */
size_t inv_gen_next(inv_gen *g, char *buf, int64_t *time_ns);

#endif
