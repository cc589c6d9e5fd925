/*
 * Fault points: named places in the embedded store and in the distributed
 * roles (sequencer, projector) where a test can make the process die at once
 * (SIGKILL, as kill -9 would), to check that recovery finishes or undoes what
 * was cut short (tests/faults/test_fault_points.py,
 * tests/faults/test_distributed_faults.py).
 *
 * ANN_FAULT_POINT("revoke.overwrite") expands to nothing unless the sources
 * are compiled with -DANN_FAULTS, which only the test-only build does
 * (build/bin/annalsd-faults; the release annalsd has no hook). There, the
 * environment variable ANNALS_FAULT=<point>[:<n>] (read once) kills the
 * process at the n-th hit (default 1) of that point, after a line on stderr
 * ("annals fault: <point> hit <n>: SIGKILL"). ANNALS_FAULT=<point>:<n>:stop
 * raises SIGSTOP instead: the process freezes there until SIGCONT (a zombie
 * for tests/faults/test_distributed_faults.py). The points are listed in
 * docs/storage.md ("Fault points": the store's) and docs/distributed.md
 * ("Fault points": the roles').
 */
#ifndef ANN_COMMON_FAULT_H
#define ANN_COMMON_FAULT_H

#ifdef ANN_FAULTS
void ann_fault_point(const char *name);
#define ANN_FAULT_POINT(name) ann_fault_point(name)
#else
#define ANN_FAULT_POINT(name) ((void)0)
#endif

#endif
