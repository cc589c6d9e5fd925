#include "kafka/kafka.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "domain/event.h"

void ann_kafka_config_defaults(ann_kafka_config *c)
{
    if (!c->brokers || !*c->brokers)
        c->brokers = "127.0.0.1:9092";
    if (!c->ns || !*c->ns)
        c->ns = ANN_NAMESPACE_DEFAULT;
    if (c->partitions <= 0)
        c->partitions = ANN_PARTITIONS_DEFAULT;
    if (c->replication <= 0)
        c->replication = 1;
    if (c->min_insync <= 0)
        c->min_insync = c->replication >= 3 ? 2 : 1;
    if (c->segment_ms <= 0)
        c->segment_ms = ANN_KAFKA_SEGMENT_MS;
    if (c->delete_delay_ms <= 0)
        c->delete_delay_ms = ANN_KAFKA_DELETE_DELAY_MS;
}

/* The configs of topic i (0 pending, 1 committed, 2 acks), through `put`. */
static void topic_configs(const ann_kafka_config *c, int i, void *o,
                          void (*put)(void *o, const char *k, const char *v))
{
    char num[32];
    snprintf(num, sizeof num, "%d", ANN_KAFKA_MAX_MESSAGE);
    put(o, "max.message.bytes", num);
    snprintf(num, sizeof num, "%d", c->min_insync);
    put(o, "min.insync.replicas", num);
    put(o, "unclean.leader.election.enable", "false");
    /* Short segments: the purger deletes records below every consumer's offset
     * (DeleteRecords), and a segment's file goes only once it is no longer the active
     * one; file.delete.delay.ms bounds how long a deleted segment's file stays. */
    snprintf(num, sizeof num, "%lld", (long long)c->segment_ms);
    put(o, "segment.ms", num);
    snprintf(num, sizeof num, "%lld", (long long)c->delete_delay_ms);
    put(o, "file.delete.delay.ms", num);
    /* Acks are read once, at once: an hour is plenty. Commands and committed records
     * are kept until consumed, then deleted by the purger (docs/distributed.md). */
    if (i == 2)
        put(o, "retention.ms", "3600000");
}

static void put_new(void *o, const char *k, const char *v)
{
    rd_kafka_NewTopic_set_config(o, k, v);
}

static void put_alter(void *o, const char *k, const char *v)
{
    rd_kafka_ConfigResource_set_config(o, k, v);
}

void ann_kafka_topic(const ann_kafka_config *c, const char *suffix, char *out, size_t cap)
{
    snprintf(out, cap, "%s.%s", c->ns, suffix);
}

int ann_kafka_fail(ann_err *err, const char *what, rd_kafka_resp_err_t code, const char *detail)
{
    fprintf(stderr, "annalsd: kafka: %s: %s%s%s\n", what, rd_kafka_err2str(code),
            detail ? ": " : "", detail ? detail : "");
    switch (code) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
        return ann_err_set(err, ANN_EUNAVAIL, "kafka %s: %s", what, rd_kafka_err2str(code));
    default:
        return ann_err_set(err, ANN_EIO, "kafka %s: %s", what, rd_kafka_err2str(code));
    }
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, ann_err *err)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
        return ann_err_set(err, ANN_EINVAL, "kafka setting %s: %s", k, errstr);
    return 0;
}

static rd_kafka_conf_t *base_conf(const ann_kafka_config *c, const char *client_id, ann_err *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char max[32];
    snprintf(max, sizeof max, "%d", ANN_KAFKA_MAX_MESSAGE + 1024 * 1024);
    if (set(conf, "bootstrap.servers", c->brokers, err) != 0 ||
        set(conf, "client.id", client_id ? client_id : "annalsd", err) != 0 ||
        set(conf, "message.max.bytes", max, err) != 0 || set(conf, "log_level", "3", err) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static rd_kafka_t *make(rd_kafka_type_t type, rd_kafka_conf_t *conf, ann_err *err)
{
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        ann_err_set(err, ANN_EUNAVAIL, "kafka client: %s", errstr);
        return NULL;
    }
    return rk;
}

rd_kafka_t *ann_kafka_producer(const ann_kafka_config *c, const char *client_id,
                               const char *transactional_id,
                               void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               void *opaque, ann_err *err)
{
    rd_kafka_conf_t *conf = base_conf(c, client_id, err);
    if (!conf)
        return NULL;
    if (set(conf, "enable.idempotence", "true", err) != 0 || set(conf, "acks", "all", err) != 0 ||
        set(conf, "linger.ms", "2", err) != 0 || set(conf, "compression.type", "lz4", err) != 0 ||
        (transactional_id && set(conf, "transactional.id", transactional_id, err) != 0) ||
        (transactional_id && set(conf, "transaction.timeout.ms", "30000", err) != 0)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (dr)
        rd_kafka_conf_set_dr_msg_cb(conf, dr);
    rd_kafka_conf_set_opaque(conf, opaque);
    return make(RD_KAFKA_PRODUCER, conf, err);
}

rd_kafka_t *ann_kafka_consumer(const ann_kafka_config *c, const char *group_id,
                               const char *instance_id,
                               void (*rebalance)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                 rd_kafka_topic_partition_list_t *, void *),
                               void *opaque, ann_err *err)
{
    rd_kafka_conf_t *conf = base_conf(c, group_id, err);
    if (!conf)
        return NULL;
    char max[32];
    snprintf(max, sizeof max, "%d", ANN_KAFKA_MAX_MESSAGE + 1024 * 1024);
    if (set(conf, "group.id", group_id ? group_id : "annals.reader", err) != 0 ||
        set(conf, "isolation.level", "read_committed", err) != 0 ||
        set(conf, "enable.auto.commit", "false", err) != 0 ||
        set(conf, "enable.auto.offset.store", "false", err) != 0 ||
        set(conf, "auto.offset.reset", "earliest", err) != 0 ||
        set(conf, "partition.assignment.strategy", "range", err) != 0 ||
        set(conf, "fetch.max.bytes", max, err) != 0 ||
        set(conf, "max.partition.fetch.bytes", max, err) != 0 ||
        /* Prefetch at most about one largest record (librdkafka's default is 64 MiB per
         * consumer): the roles consume what they fetch at once. */
        set(conf, "queued.max.messages.kbytes", "24576", err) != 0 ||
        set(conf, "session.timeout.ms", "10000", err) != 0 ||
        set(conf, "heartbeat.interval.ms", "1000", err) != 0 ||
        (instance_id && set(conf, "group.instance.id", instance_id, err) != 0)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (rebalance)
        rd_kafka_conf_set_rebalance_cb(conf, rebalance);
    rd_kafka_conf_set_opaque(conf, opaque);
    rd_kafka_t *rk = make(RD_KAFKA_CONSUMER, conf, err);
    if (rk)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

int ann_kafka_partition_count(rd_kafka_t *rk, const char *topic, int32_t *out, ann_err *err)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ann_kafka_fail(err, "metadata", e, topic);
    int rc = 0;
    if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
        rc = ann_kafka_fail(err, "metadata", md->topic_cnt ? md->topics[0].err : e, topic);
    else
        *out = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* Sets the configs of topics that already existed (AlterConfigs replaces a topic's whole
 * dynamic config with ours: these topics are annals' own). */
static int alter_configs(rd_kafka_t *rk, const ann_kafka_config *c, char names[3][256],
                         ann_err *err)
{
    rd_kafka_ConfigResource_t *cr[3];
    char errstr[256];
    for (int i = 0; i < 3; i++) {
        cr[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, names[i]);
        topic_configs(c, i, cr[i], put_alter);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ALTERCONFIGS);
    rd_kafka_AdminOptions_set_request_timeout(opt, 15000, errstr, sizeof errstr);
    rd_kafka_AlterConfigs(rk, cr, 3, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = 0;
    if (!ev) {
        rc = ann_err_set(err, ANN_EUNAVAIL, "kafka alter configs: no answer from %s", c->brokers);
    } else if (rd_kafka_event_error(ev)) {
        rc = ann_kafka_fail(err, "alter configs", rd_kafka_event_error(ev),
                            rd_kafka_event_error_string(ev));
    } else {
        size_t n = 0;
        const rd_kafka_ConfigResource_t **res =
            rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
        for (size_t i = 0; i < n && rc == 0; i++)
            if (rd_kafka_ConfigResource_error(res[i]))
                rc = ann_kafka_fail(err, "alter configs", rd_kafka_ConfigResource_error(res[i]),
                                    rd_kafka_ConfigResource_error_string(res[i]));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy_array(cr, 3);
    return rc;
}

int ann_kafka_ensure_topics(const ann_kafka_config *cfg, ann_err *err)
{
    ann_kafka_config cc = *cfg, *c = &cc;
    ann_kafka_config_defaults(c);
    rd_kafka_conf_t *conf = base_conf(c, "annalsd-admin", err);
    if (!conf)
        return -1;
    rd_kafka_t *rk = make(RD_KAFKA_PRODUCER, conf, err);
    if (!rk)
        return -1;
    static const char *const suffix[3] = {ANN_TOPIC_PENDING, ANN_TOPIC_COMMITTED, ANN_TOPIC_ACKS};
    char names[3][256], errstr[256];
    rd_kafka_NewTopic_t *nt[3];
    for (int i = 0; i < 3; i++) {
        ann_kafka_topic(c, suffix[i], names[i], sizeof names[i]);
        nt[i] =
            rd_kafka_NewTopic_new(names[i], c->partitions, c->replication, errstr, sizeof errstr);
        topic_configs(c, i, nt[i], put_new);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opt, 15000, errstr, sizeof errstr);
    rd_kafka_CreateTopics(rk, nt, 3, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = 0;
    if (!ev) {
        rc = ann_err_set(err, ANN_EUNAVAIL, "kafka create topics: no answer from %s", c->brokers);
    } else if (rd_kafka_event_error(ev)) {
        rc = ann_kafka_fail(err, "create topics", rd_kafka_event_error(ev),
                            rd_kafka_event_error_string(ev));
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        for (size_t i = 0; i < n && rc == 0; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                rc = ann_kafka_fail(err, "create topic", e, rd_kafka_topic_result_name(tr[i]));
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy_array(nt, 3);
    if (rc == 0)
        rc = alter_configs(rk, c, names, err);
    for (int i = 0; i < 2 && rc == 0; i++) {
        int32_t have = 0;
        /* A topic just created (here or by a process starting beside this one) takes a
         * moment to appear in the broker's metadata. */
        for (int tries = 0;; tries++) {
            rc = ann_kafka_partition_count(rk, names[i], &have, err);
            if (rc == 0 || tries == 50)
                break;
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (rc == 0 && have != c->partitions)
            rc = ann_err_set(err, ANN_EINVAL,
                             "kafka topic %s has %d partitions, the deployment says %d: the "
                             "partition count is fixed when the topics are created",
                             names[i], (int)have, (int)c->partitions);
    }
    rd_kafka_destroy(rk);
    return rc;
}

void ann_kafka_lag_collect(rd_kafka_t *cons, const char *family, const char *help,
                           ann_metrics_out *out)
{
    ann_metrics_out_family(out, family, "gauge", help);
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(cons, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return;
    if (rd_kafka_position(cons, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < parts->cnt; i++) {
            const rd_kafka_topic_partition_t *p = &parts->elems[i];
            int64_t lo = 0, hi = 0;
            if (p->offset < 0 || rd_kafka_get_watermark_offsets(cons, p->topic, p->partition, &lo,
                                                                &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
                continue;
            char labels[300];
            snprintf(labels, sizeof labels, "topic=\"%.200s\",partition=\"%d\"", p->topic,
                     (int)p->partition);
            ann_metrics_out_sample(out, family, labels,
                                   hi > p->offset ? (double)(hi - p->offset) : 0);
        }
    }
    rd_kafka_topic_partition_list_destroy(parts);
}
