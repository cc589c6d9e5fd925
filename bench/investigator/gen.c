/* Realistic CI-log text, deterministic from a seed (gen.h). */
#include "gen.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const inv_token inv_tokens[INV_N_TOKENS] = {
    {"rare10", "zqKestrel7Vw", 10},
    {"rare1", "zqOsprey3Lm", 1},
    {"rare100", "zqHeron5Rc", 100},
};

enum { K_CBUILD, K_MVN, K_GOTEST, K_ITEST, K_LINT, K_DEPLOY, K_N };

/* ---- randomness ---------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rnext(uint64_t *s) /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static uint32_t rn(inv_gen *g, uint32_t n)
{
    return (uint32_t)((rnext(&g->rng) >> 16) % n);
}

static double runit(uint64_t *s)
{
    return ((double)(rnext(s) >> 11) + 0.5) / 9007199254740992.0;
}

#define PICK(g, arr) ((arr)[rn((g), (uint32_t)(sizeof(arr) / sizeof(arr)[0]))])

/* ---- vocabulary ---------------------------------------------------------- */

static const char *const projects[] = {"billing",   "ledger",   "checkout", "search",  "auth",
                                       "notify",    "gateway",  "reports",  "catalog", "payments",
                                       "inventory", "shipping", "profile",  "audit",   "metrics",
                                       "storage",   "export",   "importer", "mailer",  "scheduler"};
static const char *const stages[] = {"build", "unit-test", "integration-test", "lint", "deploy"};
static const char *const envs[] = {"ci", "ci", "ci", "staging", "prod"};
static const char *const branch_words[] = {"invoice", "retry",  "timeout", "cache",  "refund",
                                           "tax",     "export", "login",   "report", "batch",
                                           "quota",   "schema", "tracing", "pool",   "webhook"};
static const char *const nouns[] = {"Invoice",  "Order",   "Customer", "Payment", "Account",
                                    "Ledger",   "Report",  "Session",  "Token",   "Batch",
                                    "Shipment", "Catalog", "Price",    "Tax",     "Refund",
                                    "Audit",    "Webhook", "Quota",    "Export",  "Schedule"};
static const char *const roles[] = {"Service",   "Controller", "Repository", "Mapper",
                                    "Validator", "Client",     "Handler",    "Factory",
                                    "Scheduler", "Listener",   "Resource",   "Processor"};
static const char *const subpkgs[] = {"api",  "service", "repo", "model",  "config",
                                      "util", "web",     "job",  "domain", "client"};
static const char *const methods[] = {
    "load",    "save",         "findById",         "process", "validate", "handle", "apply",
    "execute", "toDto",        "fromEntity",       "compute", "refresh",  "retry",  "publish",
    "consume", "lambda$run$0", "doFilterInternal", "invoke",  "call",     "get"};
static const char *const frameworks[] = {
    "org.springframework.aop.framework.ReflectiveMethodInvocation.proceed("
    "ReflectiveMethodInvocation.java:184) ~[spring-aop-6.1.14.jar:6.1.14]",
    "org.springframework.transaction.interceptor.TransactionInterceptor.invoke("
    "TransactionInterceptor.java:119) ~[spring-tx-6.1.14.jar:6.1.14]",
    "org.springframework.aop.framework.CglibAopProxy$DynamicAdvisedInterceptor.intercept("
    "CglibAopProxy.java:720) ~[spring-aop-6.1.14.jar:6.1.14]",
    "org.springframework.web.servlet.FrameworkServlet.processRequest(FrameworkServlet.java:1014) "
    "~[spring-webmvc-6.1.14.jar:6.1.14]",
    "org.springframework.web.servlet.DispatcherServlet.doDispatch(DispatcherServlet.java:1089) "
    "~[spring-webmvc-6.1.14.jar:6.1.14]",
    "jakarta.servlet.http.HttpServlet.service(HttpServlet.java:658) "
    "~[tomcat-embed-core-10.1.31.jar:6.0]",
    "org.apache.catalina.core.ApplicationFilterChain.internalDoFilter(ApplicationFilterChain.java:"
    "195) ~[tomcat-embed-core-10.1.31.jar:10.1.31]",
    "org.apache.catalina.core.StandardWrapperValve.invoke(StandardWrapperValve.java:167) "
    "~[tomcat-embed-core-10.1.31.jar:10.1.31]",
    "org.apache.coyote.http11.Http11Processor.service(Http11Processor.java:384) "
    "~[tomcat-embed-core-10.1.31.jar:10.1.31]",
    "org.hibernate.engine.jdbc.spi.SqlExceptionHelper.convert(SqlExceptionHelper.java:108) "
    "~[hibernate-core-6.5.3.Final.jar:6.5.3.Final]",
    "com.zaxxer.hikari.pool.ProxyPreparedStatement.executeQuery(ProxyPreparedStatement.java:52) "
    "~[HikariCP-5.1.0.jar:na]",
    "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1144) "
    "~[na:na]",
    "java.base/java.util.concurrent.ThreadPoolExecutor$Worker.run(ThreadPoolExecutor.java:642) "
    "~[na:na]",
    "org.junit.jupiter.engine.execution.MethodInvocation.proceed(MethodInvocation.java:60) "
    "~[junit-jupiter-engine-5.10.5.jar:5.10.5]",
    "java.base/"
    "jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103) "
    "~[na:na]",
};
static const char *const exceptions[] = {
    "java.lang.NullPointerException: Cannot invoke \"com.acme.%s.model.%s.getId()\" because \"%s\" "
    "is null",
    "java.lang.IllegalStateException: %s %s is not in a state that allows this operation (%s)",
    "org.springframework.dao.DataIntegrityViolationException: could not execute statement [ERROR: "
    "duplicate key value violates unique constraint \"uk_%s_%s\"] [%s]",
    "java.net.SocketTimeoutException: Read timed out while calling http://%s-api.%s.svc:8080/%s",
    "org.opentest4j.AssertionFailedError: expected: <%s> but was: <%s> in %s",
    "java.util.concurrent.TimeoutException: %s did not complete within 30000 ms (%s)",
};
static const char *const loggers[] = {"c.a.%s.web.%s%s", "c.a.%s.service.%s%s", "c.a.%s.repo.%s%s",
                                      "o.s.w.s.m.m.a.ExceptionHandlerExceptionResolver"};
static const char *const threads[] = {"nio-8080-exec-%u",  "scheduling-%u",
                                      "task-%u",           "main",
                                      "kafka-consumer-%u", "HikariPool-1 housekeeper"};
static const char *const http_verbs[] = {"GET", "GET", "GET", "POST", "PUT", "DELETE"};
static const char *const cmods[] = {"net",   "io",    "core", "util", "codec",
                                    "store", "sched", "http", "json", "crypto"};
static const char *const cfiles[] = {"conn", "buffer", "parser", "pool",  "queue", "hash",
                                     "map",  "timer",  "log",    "frame", "slab",  "ring"};
static const char *const cwarn[] = {
    "comparison of integer expressions of different signedness: 'int' and 'size_t' {aka 'long "
    "unsigned int'} [-Wsign-compare]",
    "unused variable '%s' [-Wunused-variable]",
    "'%s' may be used uninitialized [-Wmaybe-uninitialized]",
    "implicit conversion from 'uint64_t' {aka 'long unsigned int'} to 'int' may change value "
    "[-Wconversion]",
    "unused parameter '%s' [-Wunused-parameter]",
    "'%s' is deprecated: use %s_v2 instead [-Wdeprecated-declarations]",
    "this statement may fall through [-Wimplicit-fallthrough=]",
};
static const char *const cvars[] = {"len", "rc",  "n",  "off", "flags",
                                    "ctx", "buf", "ts", "fd",  "cap"};
static const char *const deps[] = {
    "org/springframework/spring-core/6.1.14/spring-core-6.1.14.jar",
    "org/hibernate/orm/hibernate-core/6.5.3.Final/hibernate-core-6.5.3.Final.jar",
    "com/fasterxml/jackson/core/jackson-databind/2.17.2/jackson-databind-2.17.2.jar",
    "org/junit/jupiter/junit-jupiter-engine/5.10.5/junit-jupiter-engine-5.10.5.jar",
    "org/postgresql/postgresql/42.7.4/postgresql-42.7.4.jar",
    "io/micrometer/micrometer-core/1.13.6/micrometer-core-1.13.6.jar",
    "org/apache/maven/plugins/maven-surefire-plugin/3.5.1/maven-surefire-plugin-3.5.1.pom",
};
/* Lint findings: every format takes (project, file, line, column, name). */
static const char *const lint_rules[] = {
    "/builds/acme/%s/web/src/components/%s.tsx:%u:%u: warning  '%s' is assigned a value but never "
    "used  @typescript-eslint/no-unused-vars",
    "/builds/acme/%s/internal/%s/service.go:%u:%u: ineffectual assignment to err, and `%s` is "
    "never read afterwards (ineffassign)",
    "/builds/acme/%s/internal/%s/handler.go:%u:%u: Error return value of `%s.Close` is not checked "
    "(errcheck) - see https://golangci-lint.run/usage/linters/#errcheck",
    "/builds/acme/%s/src/%s/tasks.py:%u:%u: W0612 Unused variable '%s' (unused-variable); pylint "
    "3.3.1, rcfile /builds/acme/ci/pylintrc",
    "[WARN] /builds/acme/%s/src/main/java/com/acme/%s/Config.java:%u:%u: '%s' hides a field. "
    "[HiddenField] (checkstyle 10.18.2, google_checks.xml)",
    "/builds/acme/%s/web/src/pages/%s.tsx:%u:%u: warning  React Hook useEffect has a missing "
    "dependency: '%s'. Either include it or remove the dependency array  "
    "react-hooks/exhaustive-deps",
    "npm WARN deprecated %s-%s@1.0.%u (%u): This module is not supported, and leaks memory. Do not "
    "use it; %s. Check out lru-cache for a tested way to coalesce async requests by key",
};

/* ---- a line under construction ------------------------------------------ */

typedef struct sb {
    char *p;
    size_t n;
} sb;

static void ap(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ap(sb *b, const char *fmt, ...)
{
    va_list va;
    if (b->n >= INV_LINE_MAX - 1)
        return;
    va_start(va, fmt);
    int k = vsnprintf(b->p + b->n, INV_LINE_MAX - b->n, fmt, va);
    va_end(va);
    if (k > 0)
        b->n += (size_t)k < INV_LINE_MAX - 1 - b->n ? (size_t)k : INV_LINE_MAX - 1 - b->n;
}

static void hex(inv_gen *g, char *out, int n)
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < n; i++)
        out[i] = d[rn(g, 16)];
    out[n] = '\0';
}

static void stamp(sb *b, int64_t ns, int iso)
{
    time_t s = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    ap(b, iso ? "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" : "%04d-%02d-%02d %02d:%02d:%02d.%03d",
       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
       (int)(ns % 1000000000 / 1000000));
}

static void new_class(inv_gen *g)
{
    snprintf(g->pkg, sizeof g->pkg, "com.acme.%s.%s", g->log->project, PICK(g, subpkgs));
    snprintf(g->cls, sizeof g->cls, "%s%s", PICK(g, nouns), PICK(g, roles));
    snprintf(g->meth, sizeof g->meth, "%s", PICK(g, methods));
}

/* ---- line kinds ---------------------------------------------------------- */

static void runner_preamble(inv_gen *g, sb *b)
{
    const inv_log *l = g->log;
    char h[16];
    switch (g->line) {
    case 0:
        ap(b, "Running with gitlab-runner 17.5.2 (c7d7d6c1) on ci-runner-%02u-%s, system ID: s_%s",
           rn(g, 40), l->env, (hex(g, h, 12), h));
        break;
    case 1:
        ap(b,
           "Preparing the \"docker\" executor; using docker image sha256:%s%s for "
           "registry.acme.internal/ci/%s-image:2026.11",
           (hex(g, h, 12), h), g->sha, l->project);
        break;
    case 2:
        ap(b,
           "Fetching changes with git depth set to 20... Initialized empty Git repository in "
           "/builds/acme/%s/.git/",
           l->project);
        break;
    case 3:
        ap(b, "Checking out %.8s as detached HEAD (ref is %s)... Skipping Git submodules setup",
           g->sha, l->branch);
        break;
    default:
        ap(b, "$ ./ci/%s.sh --project %s --pipeline %s --ref %s --commit %s",
           l->job + strlen(l->project) + 1, l->project, l->run, l->branch, g->sha);
        break;
    }
}

static void java_log(inv_gen *g, sb *b, const char *level)
{
    const inv_log *l = g->log;
    char tr[17], sp[17], lg[96], th[40];
    hex(g, tr, 16);
    hex(g, sp, 16);
    snprintf(lg, sizeof lg, PICK(g, loggers), l->project, PICK(g, nouns), PICK(g, roles));
    snprintf(th, sizeof th, PICK(g, threads), 1 + rn(g, 12));
    stamp(b, g->t_ns, 0);
    ap(b, " %5s 1 --- [%15.15s] %-40.40s : ", level, th, lg);
    switch (rn(g, 6)) {
    case 0:
    case 1:
        ap(b, "%s /api/v1/%ss/%u -> %u in %u ms [traceId=%s spanId=%s]", PICK(g, http_verbs),
           l->project, rn(g, 1000000), rn(g, 10) ? 200 : 404, 1 + rn(g, 300), tr, sp);
        break;
    case 2:
        ap(b, "Processed batch %u of %u (%u records, %u skipped) for tenant t-%04u in %u ms",
           rn(g, 500), 500 + rn(g, 500), rn(g, 5000), rn(g, 20), rn(g, 9999), rn(g, 4000));
        break;
    case 3:
        ap(b, "HikariPool-1 - Pool stats (total=%u, active=%u, idle=%u, waiting=%u) [traceId=%s]",
           10 + rn(g, 10), rn(g, 10), rn(g, 10), rn(g, 3), tr);
        break;
    case 4:
        ap(b, "Published %sUpdated event id=%s to topic %s.events partition %u offset %u",
           PICK(g, nouns), sp, l->project, rn(g, 12), rn(g, 9000000));
        break;
    default:
        ap(b, "Cache %s-by-id: hits=%u misses=%u evictions=%u size=%u/%u", l->project,
           rn(g, 100000), rn(g, 5000), rn(g, 800), rn(g, 10000), 10000);
        break;
    }
}

/* A stack trace: a header, the exception, 8..40 frames, maybe a "Caused by" section. */
static void trace_start(inv_gen *g, sb *b)
{
    const inv_log *l = g->log;
    new_class(g);
    g->burst = 8 + (int)rn(g, 33);
    g->depth = 0;
    g->caused = 0;
    if (g->log->kind == K_MVN) {
        ap(b, "[ERROR] %s.%sTest.should%s%s  Time elapsed: %u.%03u s  <<< FAILURE!", g->pkg, g->cls,
           PICK(g, nouns), PICK(g, methods), rn(g, 3), rn(g, 1000));
    } else {
        stamp(b, g->t_ns, 0);
        ap(b,
           " ERROR 1 --- [nio-8080-exec-%u] o.a.c.c.C.[.[.[/].[dispatcherServlet]    : "
           "Servlet.service() for servlet [dispatcherServlet] in context with path [/%s] threw "
           "exception",
           1 + rn(g, 12), l->project);
    }
}

static void exception_line(inv_gen *g, sb *b)
{
    const inv_log *l = g->log;
    char h[9];
    hex(g, h, 8);
    const char *fmt = PICK(g, exceptions);
    if (strstr(fmt, "expected"))
        ap(b, fmt, h, "41", g->cls);
    else if (strstr(fmt, "Cannot invoke"))
        ap(b, fmt, l->project, PICK(g, nouns), "entity");
    else if (strstr(fmt, "unique constraint"))
        ap(b, fmt, l->project, PICK(g, cvars), h);
    else if (strstr(fmt, "Read timed"))
        ap(b, fmt, l->project, l->env, PICK(g, methods));
    else if (strstr(fmt, "not in a state"))
        ap(b, fmt, PICK(g, nouns), h, PICK(g, methods));
    else
        ap(b, fmt, g->cls, h);
}

static void trace_next(inv_gen *g, sb *b)
{
    g->burst--;
    if (g->depth == 0) {
        exception_line(g, b);
    } else if (g->burst == 0) {
        ap(b, "\t... %u common frames omitted", 20 + rn(g, 80));
    } else if (!g->caused && g->depth > 6 && rn(g, 12) == 0) {
        g->caused = 1;
        new_class(g);
        ap(b, "Caused by: ");
        exception_line(g, b);
    } else if (g->depth < 4 || rn(g, 3) == 0) {
        if (rn(g, 3) == 0)
            new_class(g);
        ap(b, "\tat %s.%s.%s(%s.java:%u) ~[classes/:na]", g->pkg, g->cls, PICK(g, methods), g->cls,
           20 + rn(g, 600));
    } else {
        ap(b, "\tat %s", PICK(g, frameworks));
    }
    g->depth++;
}

static void cbuild(inv_gen *g, sb *b)
{
    const inv_log *l = g->log;
    const char *m = PICK(g, cmods), *f = PICK(g, cfiles);
    unsigned r = rn(g, 20);
    if (g->burst > 0) { /* the two lines gcc prints under a warning */
        g->burst--;
        if (g->burst == 1)
            ap(b, "  %u |     for (size_t i = 0; i < %s->%s; i++) { rc = %s_%s(%s, i); }", g->step,
               PICK(g, cvars), PICK(g, cvars), m, f, PICK(g, cvars));
        else
            ap(b, "      |                                   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~");
        return;
    }
    if (r < 9) {
        unsigned k = (unsigned)(g->line % 1033);
        ap(b,
           "[%u/1033] /usr/bin/cc -DACME_VERSION=\\\"2.14.%u\\\" -I/builds/acme/%s/src -O2 -g "
           "-Wall "
           "-Wextra -MD -MT src/%s/CMakeFiles/%s.dir/%s.c.o -o src/%s/CMakeFiles/%s.dir/%s.c.o -c "
           "src/%s/%s.c",
           k, rn(g, 30), l->project, m, m, f, m, m, f, m, f);
    } else if (r < 13) {
        ap(b, "[%3u%%] Building C object src/%s/CMakeFiles/acme_%s.dir/%s_%s.c.o (%s)",
           (unsigned)(g->line * 100 / (g->log->n ? g->log->n : 1)), m, m, f, PICK(g, cvars),
           l->project);
    } else if (r < 17) {
        const char *w = PICK(g, cwarn);
        g->step = 20 + (int)rn(g, 900);
        ap(b, "/builds/acme/%s/src/%s/%s.c:%d:%u: warning: ", l->project, m, f, g->step,
           5 + rn(g, 40));
        ap(b, w, PICK(g, cvars), PICK(g, cvars));
        g->burst = 2;
    } else if (r < 18) {
        ap(b, "/builds/acme/%s/src/%s/%s.c: In function '%s_%s_%s':", l->project, m, f, m, f,
           PICK(g, methods));
    } else if (r < 19) {
        ap(b,
           "[%u/1033] Linking C static library src/%s/libacme_%s.a && ranlib src/%s/libacme_%s.a",
           (unsigned)(g->line % 1033), m, m, m, m);
    } else {
        ap(b, "%u/%u Test #%u: %s_%s_test ......................   Passed    %u.%02u sec",
           rn(g, 200), 200, rn(g, 200), m, f, rn(g, 9), rn(g, 100));
    }
}

static void mvn(inv_gen *g, sb *b)
{
    const inv_log *l = g->log;
    if (g->burst > 0) {
        trace_next(g, b);
        return;
    }
    if (rn(g, 300) == 0) {
        trace_start(g, b);
        return;
    }
    unsigned r = rn(g, 39);
    new_class(g);
    if (r < 10) {
        ap(b,
           "[INFO] Tests run: %u, Failures: 0, Errors: 0, Skipped: %u, Time elapsed: %u.%03u s - "
           "in %s.%sTest",
           1 + rn(g, 60), rn(g, 3), rn(g, 9), rn(g, 1000), g->pkg, g->cls);
    } else if (r < 18) {
        ap(b,
           "[INFO] Running %s.%sTest (forked JVM %u, surefire 3.5.1, provider "
           "org.apache.maven.surefire.junitplatform.JUnitPlatformProvider)",
           g->pkg, g->cls, 1 + rn(g, 4));
    } else if (r < 24) {
        ap(b,
           "Downloaded from central: https://repo.maven.apache.org/maven2/%s (%u.%u kB at %u.%u "
           "MB/s)",
           PICK(g, deps), rn(g, 2000), rn(g, 10), rn(g, 40), rn(g, 10));
    } else if (r < 30) {
        char path[64];
        snprintf(path, sizeof path, "%s", g->pkg);
        for (char *p = path; *p; p++)
            if (*p == '.')
                *p = '/';
        ap(b,
           "[WARNING] /builds/acme/%s/src/main/java/%s/%s.java:[%u,%u] %s() in %s has been "
           "deprecated and marked for removal",
           l->project, path, g->cls, 20 + rn(g, 600), 5 + rn(g, 60), PICK(g, methods), g->cls);
    } else if (r < 33) {
        ap(b, "[INFO] --- maven-%s-plugin:3.%u.%u:%s (default-%s) @ %s-service ---",
           rn(g, 2) ? "compiler" : "surefire", rn(g, 14), rn(g, 3), rn(g, 2) ? "compile" : "test",
           rn(g, 2) ? "compile" : "test", l->project);
    } else if (r < 36) {
        ap(b,
           "[INFO] Compiling %u source files with javac [debug release 17] to target/classes (%s)",
           10 + rn(g, 400), l->project);
    } else {
        java_log(g, b, rn(g, 4) ? "INFO" : "WARN");
    }
}

/* A Go service's structured (zap) log line. */
static void zap_log(inv_gen *g, sb *b)
{
    const inv_log *l = g->log;
    char tr[33];
    hex(g, tr, 32);
    ap(b, "{\"level\":\"%s\",\"ts\":\"", rn(g, 8) ? "info" : "warn");
    stamp(b, g->t_ns, 1);
    ap(b,
       "\",\"caller\":\"%s/%s.go:%u\",\"msg\":\"%s %s\",\"tenant\":\"t-%04u\",\"%s_id\":%u,"
       "\"duration_ms\":%u,\"trace_id\":\"%s\"}",
       PICK(g, methods), l->project, 20 + rn(g, 600), PICK(g, methods), PICK(g, nouns), rn(g, 9999),
       l->project, rn(g, 10000000), rn(g, 3000), tr);
}

static void gotest(inv_gen *g, sb *b)
{
    const inv_log *l = g->log;
    if (rn(g, 20) < 11) {
        zap_log(g, b);
        return;
    }
    unsigned r = rn(g, 10);
    const char *n = PICK(g, nouns), *m = PICK(g, methods);
    if (r < 4)
        ap(b, "=== RUN   Test%s%s/with_%s_and_%s_%u", n, PICK(g, roles), PICK(g, cvars),
           PICK(g, branch_words), rn(g, 40));
    else if (r < 8)
        ap(b, "--- PASS: Test%s%s/with_%s_and_%s_%u (0.%02us)", n, PICK(g, roles), PICK(g, cvars),
           PICK(g, branch_words), rn(g, 40), rn(g, 100));
    else if (r < 9)
        ap(b, "ok  \tgithub.com/acme/%s/internal/%s\t%u.%03us\tcoverage: %u.%u%% of statements",
           l->project, m, rn(g, 9), rn(g, 1000), 40 + rn(g, 60), rn(g, 10));
    else
        ap(b, "    %s_test.go:%u: %s(%s) = %u, want %u; request id %08x, retry %u of 5", m,
           20 + rn(g, 500), m, n, rn(g, 100), rn(g, 100), rn(g, 0x7fffffff), rn(g, 5));
}

static void itest(inv_gen *g, sb *b)
{
    if (g->burst > 0) {
        trace_next(g, b);
        return;
    }
    unsigned r = rn(g, 250);
    if (r < 1)
        trace_start(g, b);
    else if (r < 20)
        java_log(g, b, "WARN");
    else if (r < 30)
        java_log(g, b, "DEBUG");
    else if (r < 38)
        gotest(g, b);
    else if (r < 90)
        zap_log(g, b);
    else
        java_log(g, b, "INFO");
}

static void lint(inv_gen *g, sb *b)
{
    if (rn(g, 6) == 0) {
        ap(b,
           "+ %s --config /builds/acme/ci/lint/%s.yaml --timeout 10m --out-format "
           "colored-line-number ./... (pass %u, %u findings so far)",
           rn(g, 2) ? "golangci-lint run" : "npx eslint --max-warnings 0", g->log->project,
           1 + rn(g, 3), rn(g, 400));
        return;
    }
    ap(b, PICK(g, lint_rules), g->log->project, PICK(g, nouns), 1 + rn(g, 400), 1 + rn(g, 80),
       PICK(g, cvars));
}

static void deploy(inv_gen *g, sb *b)
{
    const inv_log *l = g->log;
    unsigned r = rn(g, 12);
    char h[13];
    hex(g, h, 12);
    if (r < 3)
        ap(b,
           "#%u %u.%03u [builder %u/9] RUN go build -trimpath -ldflags=\"-s -w -X "
           "main.version=%.8s -X main.commit=%s\" -o /out/%s ./cmd/%s",
           1 + rn(g, 30), rn(g, 90), rn(g, 1000), 1 + rn(g, 9), g->sha, g->sha, l->project,
           l->project);
    else if (r < 5)
        ap(b,
           "#%u %u.%03u go: downloading github.com/acme/%s-sdk v1.%u.%u (sha256:%s%.20s, %u.%u MB) "
           "from proxy.golang.org",
           1 + rn(g, 30), rn(g, 90), rn(g, 1000), PICK(g, projects), rn(g, 40), rn(g, 10), h,
           g->sha + 12, rn(g, 20), rn(g, 10));
    else if (r < 7)
        ap(b,
           "Waiting for deployment \"%s-api\" rollout to finish: %u of 4 updated replicas are "
           "available... (namespace %s-%s, revision %u, image registry.acme.internal/%s:%.8s)",
           l->project, rn(g, 4), l->project, l->env, 100 + rn(g, 200), l->project, g->sha);
    else if (r < 8)
        ap(b,
           "deployment.apps/%s-api configured; service/%s-api unchanged; configmap/%s-config-%s "
           "created; horizontalpodautoscaler.autoscaling/%s-api unchanged",
           l->project, l->project, l->project, h, l->project);
    else if (r < 10)
        ap(b,
           "  Normal  Pulled     %us   kubelet  Successfully pulled image "
           "\"registry.acme.internal/%s:%.8s\" in %u.%03us. Image size: %u bytes.",
           rn(g, 60), l->project, g->sha, rn(g, 9), rn(g, 1000), 40000000 + rn(g, 90000000));
    else if (r < 11)
        zap_log(g, b);
    else
        java_log(g, b, "INFO");
}

/* Lines that carry a planted token. */
static void planted(inv_gen *g, sb *b, const char *tok)
{
    const inv_log *l = g->log;
    switch (rn(g, 4)) {
    case 0:
        ap(b,
           "+ curl -sSf -H 'Authorization: Bearer %s' "
           "https://artifacts.acme.internal/api/v4/projects/%s/packages/generic/%s/%.8s/",
           tok, l->project, l->project, g->sha);
        break;
    case 1:
        stamp(b, g->t_ns, 0);
        ap(b,
           "  WARN 1 --- [           main] c.a.%s.config.CredentialsConfig       : using fallback "
           "credentials key=%s for %s-%s",
           l->project, tok, l->project, l->env);
        break;
    case 2:
        ap(b, "DEBUG: resolved secret %s from vault path ci/%s/%s/deploy (lease 768h, renewable)",
           tok, l->project, l->env);
        break;
    default:
        ap(b, "$ export DEPLOY_TOKEN=%s REGISTRY=registry.acme.internal/%s IMAGE_TAG=%.8s", tok,
           l->project, g->sha);
        break;
    }
}

/* ---- the archive ---------------------------------------------------------- */

static int plant_cmp(const void *x, const void *y)
{
    const inv_plant *a = x, *b = y;
    if (a->log != b->log)
        return a->log < b->log ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

int inv_archive_open(inv_archive *a, const inv_spec *spec)
{
    memset(a, 0, sizeof *a);
    if (spec->logs < 1 || spec->entries < spec->logs || spec->entries < INV_PLANTS_MIN)
        return -1;
    a->spec = *spec;
    uint32_t n = spec->logs;
    uint64_t s = spec->seed;
    a->logs = calloc(n, sizeof *a->logs);
    double *w = calloc(n, sizeof *w), sum = 0;
    if (!a->logs || !w)
        return -1;
    /* Sizes: lognormal (sigma 1): most jobs print a few thousand lines, a few 50 times more. */
    for (uint32_t i = 0; i < n; i++) {
        double u1 = runit(&s), u2 = runit(&s);
        w[i] = exp(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
        sum += w[i];
    }
    uint64_t left = spec->entries - n, given = 0;
    for (uint32_t i = 0; i < n; i++) {
        a->logs[i].n = 1 + (uint64_t)((double)left * w[i] / sum);
        given += a->logs[i].n;
    }
    for (uint32_t i = 0; given < spec->entries; i = (i + 1) % n, given++)
        a->logs[i].n++;
    free(w);
    uint64_t first = 0;
    uint64_t run0 = 180000 + splitmix(&s) % 20000;
    for (uint32_t i = 0; i < n; i++) {
        inv_log *l = &a->logs[i];
        uint64_t r = splitmix(&s);
        const char *proj = projects[r % 20];
        const char *stage = stages[(r >> 8) % 5];
        l->index = i;
        l->first = first;
        first += l->n;
        snprintf(l->project, sizeof l->project, "%s", proj);
        snprintf(l->job, sizeof l->job, "%s-%s", proj, stage);
        snprintf(l->env, sizeof l->env, "%s",
                 !strcmp(stage, "deploy") ? envs[(r >> 16) % 5] : "ci");
        switch ((r >> 24) % 6) {
        case 0:
        case 1:
        case 2:
            snprintf(l->branch, sizeof l->branch, "main");
            break;
        case 3:
            snprintf(l->branch, sizeof l->branch, "release/2026.%u",
                     1 + (unsigned)((r >> 32) % 12));
            break;
        default:
            snprintf(l->branch, sizeof l->branch, "feature/%s-%u-%s-%s",
                     (r >> 40) % 2 ? "PAY" : "OPS", 100 + (unsigned)((r >> 32) % 9000),
                     branch_words[(r >> 44) % 15], branch_words[(r >> 50) % 15]);
            break;
        }
        snprintf(l->run, sizeof l->run, "%llu", (unsigned long long)(run0 + i * 7 + (r >> 56) % 7));
        snprintf(l->source, sizeof l->source, "%s-%s", l->job, l->run);
        int p = (int)(r % 20);
        switch ((r >> 8) % 5) {
        case 0:
            l->kind = p % 2 ? K_CBUILD : K_MVN;
            break;
        case 1:
            l->kind = p % 2 ? K_GOTEST : K_MVN;
            break;
        case 2:
            l->kind = K_ITEST;
            break;
        case 3:
            l->kind = K_LINT;
            break;
        default:
            l->kind = K_DEPLOY;
        }
        l->prefixed = (r >> 60) % 8 != 0;
        l->start_ns = spec->base_ns + (int64_t)((double)spec->span_ns * i / n);
    }
    /* Plants: distinct global line indexes, uniform over the archive. */
    size_t total = 0;
    for (int t = 0; t < INV_N_TOKENS; t++)
        total += inv_tokens[t].count;
    uint64_t *idx = calloc(total, sizeof *idx);
    a->plants = calloc(total, sizeof *a->plants);
    if (!idx || !a->plants)
        return -1;
    uint64_t ps = spec->seed ^ 0x51A27ULL;
    for (size_t k = 0; k < total;) {
        uint64_t v = splitmix(&ps) % spec->entries;
        size_t j;
        for (j = 0; j < k && idx[j] != v; j++)
            ;
        if (j == k)
            idx[k++] = v;
    }
    size_t k = 0;
    for (int t = 0; t < INV_N_TOKENS; t++)
        for (uint32_t c = 0; c < inv_tokens[t].count; c++, k++)
            a->plants[k].token = t, a->plants[k].line = idx[k];
    free(idx);
    uint32_t li = 0;
    for (k = 0; k < total; k++) {
        uint64_t v = a->plants[k].line;
        for (li = 0; !(v >= a->logs[li].first && v < a->logs[li].first + a->logs[li].n); li++)
            ;
        a->plants[k].log = li;
        a->plants[k].line = v - a->logs[li].first;
    }
    qsort(a->plants, total, sizeof *a->plants, plant_cmp);
    a->n_plants = total;
    for (k = 0; k < total; k++) {
        inv_log *l = &a->logs[a->plants[k].log];
        if (!l->n_plants)
            l->plant_off = k;
        l->n_plants++;
    }
    return 0;
}

void inv_archive_close(inv_archive *a)
{
    free(a->logs);
    free(a->plants);
    memset(a, 0, sizeof *a);
}

void inv_gen_open(inv_gen *g, const inv_archive *a, uint32_t log)
{
    memset(g, 0, sizeof *g);
    g->a = a;
    g->log = &a->logs[log];
    uint64_t s = a->spec.seed * 0x9E3779B97F4A7C15ULL + log + 1;
    g->rng = splitmix(&s) | 1;
    g->t_ns = g->log->start_ns;
    g->plant = g->log->plant_off;
    hex(g, g->sha, 40);
    new_class(g);
}

size_t inv_gen_next(inv_gen *g, char *buf, int64_t *time_ns)
{
    sb b = {buf, 0};
    const inv_log *l = g->log;
    buf[0] = '\0';
    /* Time: a few ms per line, nothing inside a burst, now and then a pause. */
    if (g->line > 0 && g->burst == 0) {
        uint32_t r = rn(g, 1000);
        int64_t d = r < 3 ? 500000000 + (int64_t)rn(g, 4500) * 1000000
                          : (int64_t)rn(g, 16000) * 1000 + 100000;
        g->t_ns += d;
    } else if (g->line > 0) {
        g->t_ns += rn(g, 50) * 1000;
    }
    if (l->prefixed) { /* the runner stamps every line, as GitHub Actions does */
        time_t sec = (time_t)(g->t_ns / 1000000000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        ap(&b, "%04d-%02d-%02dT%02d:%02d:%02d.%07dZ ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(g->t_ns % 1000000000 / 100));
    }
    if (g->plant < l->plant_off + l->n_plants && g->a->plants[g->plant].line == g->line) {
        planted(g, &b, inv_tokens[g->a->plants[g->plant].token].text);
        g->plant++;
    } else if (g->line < 5) {
        runner_preamble(g, &b);
    } else if (l->n > 8 && g->line == l->n - 1) {
        ap(&b,
           "Cleaning up project directory and file based variables; job %s finished: %s (pipeline "
           "%s, %s)",
           l->source, l->kind == K_ITEST && rn(g, 4) == 0 ? "FAILED (exit code 1)" : "succeeded",
           l->run, l->branch);
    } else {
        switch (l->kind) {
        case K_CBUILD:
            cbuild(g, &b);
            break;
        case K_MVN:
            mvn(g, &b);
            break;
        case K_GOTEST:
            gotest(g, &b);
            break;
        case K_ITEST:
            itest(g, &b);
            break;
        case K_LINT:
            lint(g, &b);
            break;
        default:
            deploy(g, &b);
        }
    }
    if (b.n == 0)
        ap(&b, " ");
    g->line++;
    *time_ns = g->t_ns;
    return b.n;
}
