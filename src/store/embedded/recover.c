/*
 * Start-up recovery of a serving open: deletions and revocations that a crash
 * cut short are finished before the store answers anything.
 */
#include "store/embedded/internal.h"

#include <stdio.h>
#include <string.h>

/* Finishes deletions a crash interrupted and re-applies revocations whose
 * overwrite may not have completed. */
int emb_recover(emb *s, ann_err *err)
{
    char **v = NULL;
    size_t n = 0;
    if (ann_meta_logs_where(s->meta, false, ANN_META_LOG_DELETING, &v, &n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char *slash = strchr(v[i], '/');
        *slash = '\0';
        if (emb_unlink_log_files(s, v[i], slash + 1, err) != 0 ||
            ann_meta_log_remove(s->meta, v[i], slash + 1, err) != 0) {
            ann_meta_strv_free(v, n);
            return -1;
        }
    }
    ann_meta_strv_free(v, n);
    if (ann_meta_logs_where(s->meta, true, 0, &v, &n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char *slash = strchr(v[i], '/');
        *slash = '\0';
        elog *h;
        ann_err e2;
        if (emb_log_acquire(s, v[i], slash + 1, &h, &e2) == 0) {
            emb_log_release(s, h);
        } else if (e2.code == ANN_ENOTFOUND) {
            (void)ann_meta_revoke_applied_log(s->meta, v[i], slash + 1, &e2);
        } else {
            fprintf(stderr, "annals store: pending revocation of log %s/%s not applied: %s\n", v[i],
                    slash + 1, e2.msg);
        }
    }
    ann_meta_strv_free(v, n);
    return 0;
}
