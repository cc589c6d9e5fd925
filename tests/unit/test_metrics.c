/* The metrics registry (src/common/metrics.h): the text it renders, histograms, NULL
 * handles (metrics off), collectors, concurrent counting; and the health object. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/health.h"
#include "common/metrics.h"

static char *render(ann_metrics *m, ann_buf *b)
{
    b->len = 0;
    ann_metrics_render(m, b);
    ann_buf_add_byte(b, 0);
    return (char *)b->data;
}

static void test_counter_and_gauge_text(void **state)
{
    (void)state;
    ann_metrics *m = ann_metrics_new();
    ann_counter *c = ann_metrics_counter(m, "x_total", "X things", "k=\"a\"");
    ann_counter *c2 = ann_metrics_counter(m, "x_total", "X things", "k=\"b\"");
    assert_ptr_equal(c, ann_metrics_counter(m, "x_total", "ignored", "k=\"a\""));
    ann_gauge *g = ann_metrics_gauge(m, "y", "Y now\nsecond line", "");
    ann_counter_add(c, 3);
    ann_counter_add(c2, 1);
    ann_gauge_add(g, 5);
    ann_gauge_add(g, -7);
    ann_buf b = ANN_BUF_INIT;
    assert_string_equal(render(m, &b), "# HELP x_total X things\n"
                                       "# TYPE x_total counter\n"
                                       "x_total{k=\"a\"} 3\n"
                                       "x_total{k=\"b\"} 1\n"
                                       "# HELP y Y now\\nsecond line\n"
                                       "# TYPE y gauge\n"
                                       "y -2\n");
    ann_buf_release(&b);
    ann_metrics_free(m);
}

static void test_histogram_is_cumulative(void **state)
{
    (void)state;
    ann_metrics *m = ann_metrics_new();
    static const uint64_t bounds[] = {10, 100};
    ann_histogram *h = ann_metrics_histogram(m, "h_seconds", "H", "", bounds, 2, 0.001);
    ann_histogram_observe(h, 5);
    ann_histogram_observe(h, 10); /* le is inclusive */
    ann_histogram_observe(h, 50);
    ann_histogram_observe(h, 5000);
    ann_buf b = ANN_BUF_INIT;
    assert_string_equal(render(m, &b), "# HELP h_seconds H\n"
                                       "# TYPE h_seconds histogram\n"
                                       "h_seconds_bucket{le=\"0.01\"} 2\n"
                                       "h_seconds_bucket{le=\"0.1\"} 3\n"
                                       "h_seconds_bucket{le=\"+Inf\"} 4\n"
                                       "h_seconds_sum 5.065\n"
                                       "h_seconds_count 4\n");
    ann_buf_release(&b);
    ann_metrics_free(m);
}

static void test_null_registry_counts_nothing(void **state)
{
    (void)state;
    assert_null(ann_metrics_counter(NULL, "a", "b", ""));
    assert_null(ann_metrics_histogram(NULL, "a", "b", "", ann_metrics_latency_bounds_ns, 3, 1));
    ann_counter_add(NULL, 1); /* no crash: metrics off */
    ann_gauge_set(NULL, 1);
    ann_histogram_observe(NULL, 1);
    ann_metrics_collector(NULL, NULL, NULL);
    ann_metrics_free(NULL);
}

static void collect(void *ud, ann_metrics_out *out)
{
    ann_metrics_out_family(out, "z", "gauge", "Z");
    ann_metrics_out_sample(out, "z", "p=\"0\"", *(double *)ud);
}

static void test_collectors_run_at_scrape_and_can_leave(void **state)
{
    (void)state;
    ann_metrics *m = ann_metrics_new();
    double v = 1.5;
    ann_metrics_collector(m, collect, &v);
    ann_buf b = ANN_BUF_INIT;
    assert_string_equal(render(m, &b), "# HELP z Z\n# TYPE z gauge\nz{p=\"0\"} 1.5\n");
    v = 2;
    assert_string_equal(render(m, &b), "# HELP z Z\n# TYPE z gauge\nz{p=\"0\"} 2\n");
    ann_metrics_collector_remove(m, &v);
    assert_string_equal(render(m, &b), "");
    ann_buf_release(&b);
    ann_metrics_free(m);
}

static void *adder(void *p)
{
    for (int i = 0; i < 100000; i++)
        ann_counter_add(p, 1);
    return NULL;
}

static void test_counting_from_many_threads_loses_nothing(void **state)
{
    (void)state;
    ann_metrics *m = ann_metrics_new();
    ann_counter *c = ann_metrics_counter(m, "n_total", "N", "");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, adder, c), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ann_buf b = ANN_BUF_INIT;
    assert_non_null(strstr(render(m, &b), "n_total 400000\n"));
    ann_buf_release(&b);
    ann_metrics_free(m);
}

static int probe(void *ud, ann_err *err)
{
    if (*(int *)ud == 0)
        return 0;
    return ann_err_set(err, ANN_EUNAVAIL, "kafka at nowhere is unreachable");
}

static void on_change(void *ud)
{
    ++*(int *)ud;
}

static void test_health_probes_and_draining(void **state)
{
    (void)state;
    char why[256];
    ann_health *h = ann_health_new(NULL);
    assert_true(ann_health_ready(h, why, sizeof why));
    assert_true(ann_health_service_known("", 0));
    assert_true(ann_health_service_known(ANN_SERVICE_QUERY, strlen(ANN_SERVICE_QUERY)));
    assert_false(ann_health_service_known("annals.v1", 9));
    int changes = 0, probe_result = -1;
    ann_health_sub *sub = ann_health_subscribe(h, on_change, &changes);
    ann_health_add_probe(h, "kafka", probe, &probe_result);
    ann_err err = {0};
    assert_int_equal(ann_health_start(h, 60000, &err), 0); /* probes once before it returns */
    assert_false(ann_health_ready(h, why, sizeof why));
    assert_string_equal(why, "kafka: kafka at nowhere is unreachable");
    assert_int_equal(changes, 1);
    ann_health_set_draining(h);
    assert_false(ann_health_ready(h, why, sizeof why));
    assert_non_null(strstr(why, "draining"));
    assert_int_equal(changes, 2);
    ann_health_unsubscribe(h, sub);
    ann_health_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge_text),
        cmocka_unit_test(test_histogram_is_cumulative),
        cmocka_unit_test(test_null_registry_counts_nothing),
        cmocka_unit_test(test_collectors_run_at_scrape_and_can_leave),
        cmocka_unit_test(test_counting_from_many_threads_loses_nothing),
        cmocka_unit_test(test_health_probes_and_draining),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
