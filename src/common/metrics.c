#include "common/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const uint64_t ann_metrics_latency_bounds_ns[] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000};
const size_t ann_metrics_latency_bounds_n =
    sizeof ann_metrics_latency_bounds_ns / sizeof ann_metrics_latency_bounds_ns[0];

enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

typedef struct series {
    char *labels;
    union {
        ann_counter c;
        ann_gauge g;
        ann_histogram h;
    } u;
    struct series *next;
} series;

typedef struct family {
    char *name, *help;
    int kind;
    series *first, *last;
    struct family *next;
} family;

typedef struct collector {
    ann_metrics_collect_fn fn;
    void *ud;
    struct collector *next;
} collector;

struct ann_metrics {
    pthread_mutex_t mu; /* guards the lists below (the values are atomics) */
    family *families, *last_family;
    collector *collectors;
};

struct ann_metrics_out {
    ann_buf *b;
};

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ann_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

ann_metrics *ann_metrics_new(void)
{
    ann_metrics *m = ann_xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void ann_metrics_free(ann_metrics *m)
{
    if (!m)
        return;
    for (family *f = m->families, *fn; f; f = fn) {
        fn = f->next;
        for (series *s = f->first, *sn; s; s = sn) {
            sn = s->next;
            free(s->labels);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    for (collector *c = m->collectors, *cn; c; c = cn) {
        cn = c->next;
        free(c);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* The series (created if new) of family name/labels. Caller holds m->mu. NULL when the
 * name is already a family of another kind (a programming error, reported once). */
static series *lookup(ann_metrics *m, const char *name, const char *help, int kind,
                      const char *labels)
{
    family *f = m->families;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (!f) {
        f = ann_xcalloc(1, sizeof *f);
        f->name = xstrdup(name);
        f->help = xstrdup(help ? help : "");
        f->kind = kind;
        if (m->last_family)
            m->last_family->next = f;
        else
            m->families = f;
        m->last_family = f;
    } else if (f->kind != kind) {
        fprintf(stderr, "annalsd: metric %s registered with two types\n", name);
        return NULL;
    }
    for (series *s = f->first; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            return s;
    series *s = ann_xcalloc(1, sizeof *s);
    s->labels = xstrdup(labels ? labels : "");
    if (f->last)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    return s;
}

ann_counter *ann_metrics_counter(ann_metrics *m, const char *name, const char *help,
                                 const char *labels)
{
    if (!m)
        return NULL;
    pthread_mutex_lock(&m->mu);
    series *s = lookup(m, name, help, KIND_COUNTER, labels ? labels : "");
    pthread_mutex_unlock(&m->mu);
    return s ? &s->u.c : NULL;
}

ann_gauge *ann_metrics_gauge(ann_metrics *m, const char *name, const char *help, const char *labels)
{
    if (!m)
        return NULL;
    pthread_mutex_lock(&m->mu);
    series *s = lookup(m, name, help, KIND_GAUGE, labels ? labels : "");
    pthread_mutex_unlock(&m->mu);
    return s ? &s->u.g : NULL;
}

ann_histogram *ann_metrics_histogram(ann_metrics *m, const char *name, const char *help,
                                     const char *labels, const uint64_t *bounds, size_t n,
                                     double scale)
{
    if (!m)
        return NULL;
    if (n > ANN_HIST_MAX_BOUNDS)
        n = ANN_HIST_MAX_BOUNDS;
    pthread_mutex_lock(&m->mu);
    series *s = lookup(m, name, help, KIND_HISTOGRAM, labels ? labels : "");
    if (s && s->u.h.n == 0) {
        s->u.h.n = n;
        memcpy(s->u.h.bounds, bounds, n * sizeof *bounds);
        s->u.h.scale = scale;
    }
    pthread_mutex_unlock(&m->mu);
    return s ? &s->u.h : NULL;
}

void ann_metrics_collector(ann_metrics *m, ann_metrics_collect_fn fn, void *ud)
{
    if (!m)
        return;
    collector *c = ann_xcalloc(1, sizeof *c);
    c->fn = fn;
    c->ud = ud;
    pthread_mutex_lock(&m->mu);
    collector **p = &m->collectors;
    while (*p)
        p = &(*p)->next;
    *p = c;
    pthread_mutex_unlock(&m->mu);
}

void ann_metrics_collector_remove(ann_metrics *m, void *ud)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    for (collector **p = &m->collectors; *p;) {
        if ((*p)->ud == ud) {
            collector *dead = *p;
            *p = dead->next;
            free(dead);
        } else {
            p = &(*p)->next;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

static void addf(ann_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(ann_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    ann_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* name{labels} or name{labels,extra} or name, as Prometheus wants it. */
static void add_name(ann_buf *b, const char *name, const char *suffix, const char *labels,
                     const char *extra)
{
    bool l = labels && *labels, e = extra && *extra;
    addf(b, "%s%s", name, suffix);
    if (l || e)
        addf(b, "{%s%s%s}", l ? labels : "", l && e ? "," : "", e ? extra : "");
}

static void add_value(ann_buf *b, double v)
{
    if (isnan(v))
        addf(b, " NaN\n");
    else if (isinf(v))
        addf(b, v > 0 ? " +Inf\n" : " -Inf\n");
    else if (v == (double)(int64_t)v && fabs(v) < 9e15)
        addf(b, " %lld\n", (long long)v);
    else
        addf(b, " %.9g\n", v);
}

static const char *kind_name(int kind)
{
    return kind == KIND_COUNTER ? "counter" : kind == KIND_GAUGE ? "gauge" : "histogram";
}

/* HELP text: backslash and newline escaped. */
static void add_help(ann_buf *b, const char *name, const char *help, const char *type)
{
    addf(b, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            addf(b, "\\\\");
        else if (*p == '\n')
            addf(b, "\\n");
        else
            ann_buf_add_byte(b, (uint8_t)*p);
    }
    addf(b, "\n# TYPE %s %s\n", name, type);
}

static void render_histogram(ann_buf *b, const char *name, const series *s)
{
    const ann_histogram *h = &s->u.h;
    uint64_t cum = 0;
    char le[64];
    for (size_t i = 0; i <= h->n; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->n)
            snprintf(le, sizeof le, "le=\"%.9g\"", (double)h->bounds[i] * h->scale);
        else
            snprintf(le, sizeof le, "le=\"+Inf\"");
        add_name(b, name, "_bucket", s->labels, le);
        add_value(b, (double)cum);
    }
    add_name(b, name, "_sum", s->labels, NULL);
    add_value(b, (double)atomic_load_explicit(&h->sum, memory_order_relaxed) * h->scale);
    add_name(b, name, "_count", s->labels, NULL);
    add_value(b, (double)cum);
}

void ann_metrics_render(ann_metrics *m, ann_buf *out)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    for (family *f = m->families; f; f = f->next) {
        add_help(out, f->name, f->help, kind_name(f->kind));
        for (series *s = f->first; s; s = s->next) {
            if (f->kind == KIND_HISTOGRAM) {
                render_histogram(out, f->name, s);
                continue;
            }
            add_name(out, f->name, f->kind == KIND_COUNTER ? "" : "", s->labels, NULL);
            if (f->kind == KIND_COUNTER)
                add_value(out, (double)atomic_load_explicit(&s->u.c.v, memory_order_relaxed));
            else
                add_value(out, (double)atomic_load_explicit(&s->u.g.v, memory_order_relaxed));
        }
    }
    ann_metrics_out o = {.b = out};
    for (collector *c = m->collectors; c; c = c->next)
        c->fn(c->ud, &o);
    pthread_mutex_unlock(&m->mu);
}

void ann_metrics_out_family(ann_metrics_out *out, const char *name, const char *type,
                            const char *help)
{
    add_help(out->b, name, help, type);
}

void ann_metrics_out_sample(ann_metrics_out *out, const char *name, const char *labels,
                            double value)
{
    add_name(out->b, name, "", labels, NULL);
    add_value(out->b, value);
}

uint64_t ann_metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
