/*
 * The gRPC server over a store whose commands complete on the store's own threads, late
 * (tests/support/asyncstore.c, DELAY_MS after the call): a unary call does not hold a
 * worker while its store operation is pending, the reply is sent from the completion
 * thread, and a call whose completion is pending when the server stops still finishes
 * (under ASan: nothing leaks, nothing is used after free).
 */
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <grpc/grpc.h>

#include "api/server.h"
#include "api/service.h"
#include "asyncstore.h"
#include "client/rpc.h"
#include "domain/rules.h"
#include "memstore.h"

#define DELAY_MS 400
#define N_WRITERS 12

typedef struct fx {
    ann_store *store;
    ann_service svc;
    ann_server *srv;
    ann_client *cli;
    char addr[64];
    char log[ANN_UUID_LEN + 1];
} fx;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

#define BINZ(s) ((ProtobufCBinaryData){strlen(s), (uint8_t *)(s)})

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    ann_err err = {0};
    grpc_init();
    f->store = ann_asyncstore_new(ann_memstore_new(), false, DELAY_MS);
    uint8_t raw[32], hash[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (uint8_t)(i * 7 + 1);
    char key[ANN_KEY_LEN + 1];
    ann_key_format(raw, key);
    ann_key_hash(key, strlen(key), hash);
    ann_tenant t;
    assert_int_equal(ann_store_tenant_create(f->store, "t", hash, &t, &err), 0);
    assert_int_equal(ann_service_init(&f->svc, f->store, &err), 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", free_port());
    /* The fewest workers: 2 for writes, so held workers would serialize the writers. */
    ann_server_opts so = {.listen = f->addr, .workers = 1};
    assert_int_equal(ann_server_start(&f->svc, &so, &f->srv, &err), 0);
    ann_client_opts co = {.addr = f->addr, .token = key};
    ann_rpc_status st;
    assert_int_equal(ann_client_new(&co, &f->cli, &st), 0);

    Annals__V1__CreateLogRequest c = ANNALS__V1__CREATE_LOG_REQUEST__INIT;
    Annals__Wire__V1__CreateLogResponse *cr = NULL;
    assert_int_equal(ann_rpc_create_log(f->cli, &c, 30000, &cr, &st), 0);
    assert_int_equal(cr->log->id.len, ANN_UUID_LEN);
    memcpy(f->log, cr->log->id.data, ANN_UUID_LEN);
    protobuf_c_message_free_unpacked(&cr->base, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->srv)
        ann_server_stop(f->srv);
    ann_client_free(f->cli);
    ann_store_close(f->store);
    grpc_shutdown();
    free(f);
    return 0;
}

typedef struct writer {
    fx *f;
    int code;
    size_t n_ids;
    char id[24];
} writer;

static void *write_one(void *p)
{
    writer *w = p;
    Annals__Wire__V1__LogEntry e = ANNALS__WIRE__V1__LOG_ENTRY__INIT, *ep = &e;
    e.payload_case = ANNALS__WIRE__V1__LOG_ENTRY__PAYLOAD_TEXT_PAYLOAD;
    e.text_payload = BINZ("hello");
    Annals__Wire__V1__WriteLogEntriesRequest r = ANNALS__WIRE__V1__WRITE_LOG_ENTRIES_REQUEST__INIT;
    r.log_id = BINZ(w->f->log);
    r.n_entries = 1;
    r.entries = &ep;
    Annals__Wire__V1__WriteLogEntriesResponse *resp = NULL;
    ann_rpc_status st = {0};
    ann_rpc_write_log_entries(w->f->cli, &r, 60000, &resp, &st);
    w->code = st.code;
    if (resp) {
        w->n_ids = resp->n_entry_ids;
        if (resp->n_entry_ids)
            snprintf(w->id, sizeof w->id, "%.*s", (int)resp->entry_ids[0].len,
                     (const char *)resp->entry_ids[0].data);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    return NULL;
}

static void writes_do_not_hold_workers(void **state)
{
    fx *f = *state;
    pthread_t th[N_WRITERS];
    writer w[N_WRITERS];
    /* Completions are held: every write must still reach the store. Two write workers
     * held per call would let only two in, and the rest would wait forever. */
    ann_asyncstore_hold(f->store, true);
    for (int i = 0; i < N_WRITERS; i++) {
        w[i] = (writer){.f = f};
        pthread_create(&th[i], NULL, write_one, &w[i]);
    }
    int waited_ms = 0;
    while (ann_asyncstore_calls(f->store) < 1 + N_WRITERS && waited_ms < 60000) {
        usleep(10000);
        waited_ms += 10;
    }
    int started = ann_asyncstore_calls(f->store);
    ann_asyncstore_hold(f->store, false);
    bool seen[N_WRITERS + 1] = {false};
    for (int i = 0; i < N_WRITERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].code, ANN_RPC_OK);
        assert_int_equal(w[i].n_ids, 1);
        int id = atoi(w[i].id);
        assert_true(id >= 1 && id <= N_WRITERS);
        assert_false(seen[id]);
        seen[id] = true;
    }
    assert_int_equal(started, 1 + N_WRITERS);
}

static void stop_with_a_pending_completion(void **state)
{
    fx *f = *state;
    int before = ann_asyncstore_calls(f->store);
    pthread_t th;
    writer w = {.f = f};
    pthread_create(&th, NULL, write_one, &w);
    while (ann_asyncstore_calls(f->store) == before) /* the store op has started */
        usleep(1000);
    ann_server_stop(f->srv); /* waits for the pending completion, which answers the call */
    f->srv = NULL;
    pthread_join(th, NULL);
    assert_int_equal(w.code, ANN_RPC_OK);
    assert_int_equal(w.n_ids, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(writes_do_not_hold_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_with_a_pending_completion, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
