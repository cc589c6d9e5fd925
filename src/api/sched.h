/*
 * ann_sched: the server's worker pools, fair across tenants.
 *
 * Work comes in classes, each with its own pool of threads, so that one kind cannot
 * starve another: ADMIT (authenticate a new call before its message is read), WRITE
 * (commands: they mostly wait for group commit) and READ (listings and tails: they use
 * CPU). Within a class every tenant has its own FIFO queue; idle workers take the next
 * task from the tenants in round-robin order, and no tenant runs more than `cap` tasks
 * of a class at once, so with cap < workers another tenant's task always finds a free
 * thread. READ workers may run at a lower CPU priority (nice), so that scanning readers
 * on a small machine do not delay the writers' handlers and the group commit.
 *
 * Locking: one mutex guards every queue and count; tasks run without it.
 */
#ifndef ANN_API_SCHED_H
#define ANN_API_SCHED_H

#include <stddef.h>

typedef enum ann_class {
    ANN_CLASS_ADMIT,
    ANN_CLASS_WRITE,
    ANN_CLASS_READ,
    ANN_NCLASS,
} ann_class;

typedef struct ann_sched_class_opts {
    int workers; /* threads (>= 1) */
    int cap;     /* most tasks of one tenant running at once (1..workers) */
    int nice;    /* added to the threads' nice value (0: none) */
} ann_sched_class_opts;

typedef struct ann_sched_opts {
    ann_sched_class_opts cls[ANN_NCLASS];
} ann_sched_opts;

/* The defaults for `workers` handler threads in all (the WRITE pool gets most). */
void ann_sched_opts_default(ann_sched_opts *o, int workers);

typedef struct ann_sched ann_sched;
typedef void (*ann_task_fn)(void *arg);

ann_sched *ann_sched_create(const ann_sched_opts *o);

/* Queues fn(arg) in class `cls` for `tenant` (a key of at most 63 bytes; "" is a tenant
 * too, e.g. the not yet authenticated). Never blocks, never fails. */
void ann_sched_submit(ann_sched *s, ann_class cls, const char *tenant, ann_task_fn fn, void *arg);

/* Runs every queued task, then joins the threads and frees everything. */
void ann_sched_destroy(ann_sched *s);

/* For tests: tasks queued and running in a class. */
void ann_sched_counts(ann_sched *s, ann_class cls, size_t *queued, size_t *running);

#endif
