/*
 * chat-worker: applies presence events from the gateways, cleans up after
 * dead gateways, and keeps room history within its age limit. Several
 * workers share the work through one Redis consumer group; none is a
 * leader. See docs/ARCHITECTURE.md and wk_server.h for the modules.
 */
#include "cm_config.h"
#include "cm_log.h"
#include "cm_redis_url.h"
#include "cm_util.h"
#include "wk_server.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static int check_log_level(const char *value, char *err, size_t errlen)
{
    enum cm_log_level level;
    if (cm_log_level_parse(value, &level) != 0) {
        snprintf(err, errlen, "must be debug, info, warn or error");
        return -1;
    }
    return 0;
}

static int check_id(const char *value, char *err, size_t errlen)
{
    return value[0] == '\0' ? 0 : cm_check_id(value, err, errlen);
}

static int check_listen(const char *value, char *err, size_t errlen)
{
    return value[0] == '\0' ? 0 : cm_check_hostport(value, err, errlen);
}

#define OPT(field) offsetof(struct wk_config, field)

static const struct cm_option options[] = {
    CM_REDIS_OPTIONS(OPT(redis), OPT(redis_cluster), OPT(event_partitions)),
    {"id", CM_OPT_STR, OPT(id), NULL, "ID",
     "consumer name in the workers group (default: w- and 8 random hex digits)", 0, 0, check_id},
    {"listen", CM_OPT_STR, OPT(listen), NULL, "HOST:PORT",
     "serve /healthz, /readyz and /metrics here (default: no HTTP server)", 0, 0, check_listen},
    {"history-ttl-s", CM_OPT_INT, OPT(history_ttl_s), "604800", "N",
     "drop history older than N seconds; expire rooms idle that long with no members", 1,
     315360000LL, NULL},
    {"gateway-timeout-ms", CM_OPT_INT, OPT(gateway_timeout_ms), "10000", "N",
     "declare a gateway dead after N ms without a heartbeat", 100, 86400000LL, NULL},
    {"claim-idle-ms", CM_OPT_INT, OPT(claim_idle_ms), "5000", "N",
     "claim events left unacknowledged by another worker for N ms", 100, 86400000LL, NULL},
    {"sweep-ms", CM_OPT_INT, OPT(sweep_ms), "1000", "N",
     "run the claim, gateway and retention sweeps every N ms", 10, 60000, NULL},
    {"log-level", CM_OPT_STR, OPT(log_level), "info", "LEVEL", "debug, info, warn or error", 0, 0,
     check_log_level},
};

static const struct cm_program program = {
    "chat-worker",
    CHAT_VERSION,
    "presence, gateway cleanup and history retention for the chat cluster",
};

int main(int argc, char **argv)
{
    struct wk_server srv; /* the one context, passed to every module */
    enum cm_log_level level = CM_LOG_INFO;

    memset(&srv, 0, sizeof(srv));

    int rc = cm_config_parse(&program, options, CM_ARRAY_LEN(options), &srv.cfg, argc, argv);
    if (rc == CM_CONFIG_EXIT)
        return 0;
    if (rc != CM_CONFIG_OK)
        return 2;
    char err[160];
    if (cm_redis_target_parse(srv.cfg.redis, srv.cfg.redis_cluster, &srv.redis, err,
                              sizeof(err)) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    cm_log_level_parse(srv.cfg.log_level, &level);
    cm_log_set_level(level);
    if (srv.cfg.id && srv.cfg.id[0] != '\0') {
        snprintf(srv.id, sizeof(srv.id), "%s", srv.cfg.id);
    } else {
        char hex[9];
        cm_random_hex(hex, 4);
        snprintf(srv.id, sizeof(srv.id), "w-%s", hex);
    }
    /* A Redis connection closed under a write must be an error, not death. */
    signal(SIGPIPE, SIG_IGN);

    rc = wk_server_init(&srv) == 0 ? wk_server_run(&srv) : 1;
    wk_server_free(&srv);
    return rc;
}
