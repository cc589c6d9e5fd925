/* Fault points of test builds (fault.h). Empty unless ANN_FAULTS is defined. */
#include "common/fault.h"

#ifdef ANN_FAULTS

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The one point chosen for this process, read once from ANNALS_FAULT. A test
 * build runs one store or role per process, so process-wide state is acceptable here
 * (and only here). */
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;
static char fault_name[64];
static unsigned long fault_nth;
static int fault_sig = SIGKILL; /* SIGSTOP with the suffix ":stop" */
static atomic_ulong fault_hits;

static void fault_init(void)
{
    const char *v = getenv("ANNALS_FAULT");
    if (!v || !v[0])
        return;
    const char *colon = strchr(v, ':');
    size_t len = colon ? (size_t)(colon - v) : strlen(v);
    if (len >= sizeof fault_name)
        len = sizeof fault_name - 1;
    memcpy(fault_name, v, len);
    fault_nth = colon ? strtoul(colon + 1, NULL, 10) : 1;
    if (fault_nth == 0)
        fault_nth = 1;
    if (colon && strstr(colon + 1, ":stop"))
        fault_sig = SIGSTOP;
    fprintf(stderr, "annals fault: armed %s at hit %lu (%s)\n", fault_name, fault_nth,
            fault_sig == SIGSTOP ? "SIGSTOP" : "SIGKILL");
}

void ann_fault_point(const char *name)
{
    pthread_once(&fault_once, fault_init);
    if (!fault_name[0] || strcmp(name, fault_name) != 0)
        return;
    unsigned long hit = atomic_fetch_add(&fault_hits, 1) + 1;
    if (hit != fault_nth)
        return;
    char line[128];
    int n = snprintf(line, sizeof line, "annals fault: %s hit %lu: %s\n", name, hit,
                     fault_sig == SIGSTOP ? "SIGSTOP" : "SIGKILL");
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n);
    /* SIGSTOP: the process stops here (a zombie to be) until a test sends SIGCONT,
     * then goes on as if nothing happened; raise() stops only when the signal is
     * delivered, i.e. at once. */
    raise(fault_sig);
}

#else

typedef int ann_fault_unused; /* ISO C wants a declaration in every file */

#endif
