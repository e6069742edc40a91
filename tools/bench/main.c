/*
 * chat-bench: load generator for the chat cluster (docs/PERFORMANCE.md).
 * Parses and checks the flags, sets up one struct bn, runs one mode.
 *
 * Exit status: 0 the run completed and every check held; 1 it completed
 * with a problem (loss, duplicates, failed connections, unrecovered
 * clients, a timeout) — the JSON line says which; 2 bad usage; 3 the
 * backstop timer fired (the run did not stop by itself).
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#ifndef CHAT_VERSION
#define CHAT_VERSION "0"
#endif

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_alarm(int sig)
{
    static const char msg[] = "chat-bench: backstop timer fired: the run did not end by "
                              "itself; exiting\n";
    (void)sig;
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(3);
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "chat-bench %s: load generator for the chat cluster (speaks docs/PROTOCOL.md)\n"
        "\n"
        "Usage: chat-bench MODE [options]\n"
        "\n"
        "Modes:\n"
        "  fanout    N clients over R rooms; S of them send at a total rate; every acked\n"
        "            message must reach every member of its room (loss, duplicates, seq\n"
        "            gaps, latency send->receipt, deliveries per server CPU-second)\n"
        "  idle      open N connections and hold them: memory per connection\n"
        "  connect   connections per second: slots that connect, upgrade, get welcome\n"
        "            (and joined with --rooms), close cleanly, and again\n"
        "  storm     N clients drop at once and rejoin with since; every client must\n"
        "            recover with no gap and no duplicate\n"
        "\n"
        "Options:\n"
        "  --url URL[,URL...]       gateway WebSocket URLs, ws://HOST:PORT/PATH; client i\n"
        "                           uses URL i %% U, like a TCP balancer [ws://127.0.0.1:8080/ws]\n"
        "  --clients N              connections (connect: concurrent slots)\n"
        "                           [fanout 1000, idle 1000, connect 50, storm 1000]\n"
        "  --rooms R                client i joins room i %% R; 0 joins none (idle, connect)\n"
        "                           [fanout 10, storm 10, idle 0, connect 0]\n"
        "  --senders S              fanout: the first S clients also send; storm: S more\n"
        "                           connections that send throughout [R]\n"
        "  --rate MSGS              chat messages per second, all senders together; each is\n"
        "                           delivered to N/R members [fanout 100, storm 100]\n"
        "  --size BYTES             chat message text size, 40..60000 [100]\n"
        "  --duration SECS          fanout: sending time; idle: hold time; connect: run time;\n"
        "                           storm: sending time before, between and after storms [10; "
        "storm 3]\n"
        "  --max-messages N         stop sending after N messages [10000000]\n"
        "  --max-connections N      connect: stop after N connections [1000000]\n"
        "  --storms K               storm: how many storms, 1..100 [1]\n"
        "  --drop rst|fin|close     storm: how clients drop: TCP reset, TCP close, or\n"
        "                           WebSocket close 1000 [rst]\n"
        "  --drain SECS             after sending, wait this long at most for acks and\n"
        "                           deliveries [5]\n"
        "  --settle SECS            after the joins, wait this long before measuring [1]\n"
        "  --timeout SECS           hard bound on the whole run [computed from the others]\n"
        "  --connect-concurrency N  connection attempts in flight at once while setting up [1000]\n"
        "  --storm-concurrency N    storm: reconnects in flight at once during a storm [all]\n"
        "  --source-addrs K         bind sockets to 127.0.0.1..127.0.0.K; 0 picks K from the\n"
        "                           ephemeral port range (needed past ~28,000 per gateway) [0]\n"
        "  --max-inflight N         unanswered messages at most; a send slot past it is\n"
        "                           skipped and counted [100000]\n"
        "  --pids [NAME=]PID,...    server processes whose CPU seconds (utime+stime) and\n"
        "                           memory (VmRSS, VmHWM) are reported\n"
        "  --redis HOST:PORT        read INFO commandstats before and after (fanout, storm):\n"
        "                           Redis commands per chat message\n"
        "  --room-prefix P          rooms are named P-<run id>-<i> [bench]\n"
        "  --presence MODE          joins ask for presence MODE: events, diff or count\n"
        "                           (docs/PROTOCOL.md, big rooms) [not asked: events]\n"
        "  --churn-per-sec R        fanout: while sending, R more members a second join\n"
        "                           (connections of their own, fresh nicknames) and leave\n"
        "                           after --churn-hold; 0 for none [0]\n"
        "  --churn-hold SECS        fanout: how long a churn member stays joined [1]\n"
        "  --presence-within SECS   storm: after each storm, read the rooms' member lists\n"
        "                           (GET /api/rooms/{room}/members, every page) until they\n"
        "                           hold exactly the clients, rejoined; a problem if not\n"
        "                           within SECS of the drop; 0 for no check [10]\n"
        "  --quiet                  no progress line every second on stderr\n"
        "  --help                   show this help and exit\n"
        "  --version                show the version and exit\n"
        "\n"
        "Output: a summary for people on stdout, then one JSON line (the last line).\n"
        "Exit status: 0 all checks held; 1 a problem (see \"problem\" in the JSON);\n"
        "2 bad usage; 3 the backstop timer fired.\n"
        "Gateways limit messages per connection (--rate-per-sec, default 20): run them\n"
        "with --rate-per-sec 1000000 --rate-burst 1000000 for fanout and storm.\n",
        CHAT_VERSION);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints a usage error with the hint to --help; returns -1. */
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chat-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'chat-bench --help'.\n");
    va_end(ap);
    return -1;
}

static int parse_long(const char *name, const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        return bad("--%s must be an integer in %lld..%lld", name, lo, hi);
    }
    *out = x;
    return 0;
}

/* parse_long for the config's long fields (counts and sizes). */
static int parse_count(const char *name, const char *v, long lo, long hi, long *out)
{
    long long x = 0; /* set on success only; 0 keeps -O2 from warning */
    if (parse_long(name, v, lo, hi, &x) != 0)
        return -1;
    *out = (long)x;
    return 0;
}

static int parse_double(const char *name, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        return bad("--%s must be a number in %g..%g", name, lo, hi);
    }
    *out = x;
    return 0;
}

static int parse_url(const char *text, struct bn_url *u)
{
    char host[128];
    int port = 80;
    if (strlen(text) >= sizeof(u->text) || strncmp(text, "ws://", 5) != 0)
        return bad("bad --url '%s': expected ws://HOST:PORT/PATH (no wss://)", text);
    snprintf(u->text, sizeof(u->text), "%s", text);
    const char *h = text + 5;
    const char *slash = strchr(h, '/');
    const char *hend = slash ? slash : h + strlen(h);
    snprintf(u->path, sizeof(u->path), "%s", slash ? slash : "/");
    const char *colon = memchr(h, ':', (size_t)(hend - h));
    size_t hlen = (size_t)((colon ? colon : hend) - h);
    if (hlen == 0 || hlen >= sizeof(host))
        return bad("bad --url '%s': no host", text);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (end != hend || p < 1 || p > 65535)
            return bad("bad --url '%s': bad port", text);
        port = (int)p;
    }
    snprintf(u->host, sizeof(u->host), "%.*s", (int)(hend - h), h);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0)
        return bad("bad --url '%s': cannot resolve the host (IPv4 only)", text);
    memcpy(&u->addr, ai->ai_addr, sizeof(u->addr));
    u->addr.sin_port = htons((uint16_t)port);
    freeaddrinfo(ai);
    return 0;
}

static int parse_urls(struct bn_config *cfg, const char *list)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (cfg->nurls == BN_MAX_URLS)
            return bad("at most %d URLs", BN_MAX_URLS);
        if (parse_url(t, &cfg->urls[cfg->nurls]) < 0)
            return -1;
        cfg->nurls++;
    }
    return cfg->nurls ? 0 : bad("--url is empty");
}

static int parse_pids(struct bn_config *cfg, const char *list)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (cfg->npids == BN_MAX_PIDS)
            return bad("at most %d --pids", BN_MAX_PIDS);
        struct bn_pid *p = &cfg->pids[cfg->npids];
        char *eq = strchr(t, '=');
        const char *num = eq ? eq + 1 : t;
        char *end;
        long pid = strtol(num, &end, 10);
        if (end == num || *end || pid <= 0 || pid > INT_MAX)
            return bad("bad --pids entry '%s': expected [NAME=]PID", t);
        p->pid = (int)pid;
        if (eq)
            snprintf(p->name, sizeof(p->name), "%.*s", (int)(eq - t), t);
        else
            snprintf(p->name, sizeof(p->name), "pid%ld", pid);
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        if (access(path, R_OK) != 0)
            return bad("--pids: no process %s", num);
        cfg->npids++;
    }
    return 0;
}

enum {
    O_URL = 256,
    O_CLIENTS,
    O_ROOMS,
    O_SENDERS,
    O_RATE,
    O_SIZE,
    O_DURATION,
    O_MAX_MESSAGES,
    O_MAX_CONNECTIONS,
    O_STORMS,
    O_DROP,
    O_DRAIN,
    O_SETTLE,
    O_TIMEOUT,
    O_CONCURRENCY,
    O_STORM_CONCURRENCY,
    O_SOURCES,
    O_MAX_INFLIGHT,
    O_PIDS,
    O_REDIS,
    O_ROOM_PREFIX,
    O_PRESENCE,
    O_CHURN,
    O_CHURN_HOLD,
    O_PRESENCE_WITHIN,
    O_QUIET,
    O_HELP,
    O_VERSION
};

static const struct option long_opts[] = {
    {"url", required_argument, NULL, O_URL},
    {"clients", required_argument, NULL, O_CLIENTS},
    {"rooms", required_argument, NULL, O_ROOMS},
    {"senders", required_argument, NULL, O_SENDERS},
    {"rate", required_argument, NULL, O_RATE},
    {"size", required_argument, NULL, O_SIZE},
    {"duration", required_argument, NULL, O_DURATION},
    {"max-messages", required_argument, NULL, O_MAX_MESSAGES},
    {"max-connections", required_argument, NULL, O_MAX_CONNECTIONS},
    {"storms", required_argument, NULL, O_STORMS},
    {"drop", required_argument, NULL, O_DROP},
    {"drain", required_argument, NULL, O_DRAIN},
    {"settle", required_argument, NULL, O_SETTLE},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"connect-concurrency", required_argument, NULL, O_CONCURRENCY},
    {"storm-concurrency", required_argument, NULL, O_STORM_CONCURRENCY},
    {"source-addrs", required_argument, NULL, O_SOURCES},
    {"max-inflight", required_argument, NULL, O_MAX_INFLIGHT},
    {"pids", required_argument, NULL, O_PIDS},
    {"redis", required_argument, NULL, O_REDIS},
    {"room-prefix", required_argument, NULL, O_ROOM_PREFIX},
    {"presence", required_argument, NULL, O_PRESENCE},
    {"churn-per-sec", required_argument, NULL, O_CHURN},
    {"churn-hold", required_argument, NULL, O_CHURN_HOLD},
    {"presence-within", required_argument, NULL, O_PRESENCE_WITHIN},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    {NULL, 0, NULL, 0},
};

/* Values not given on the command line: -1 until the mode picks them. */
static void config_unset(struct bn_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->clients = cfg->rooms = cfg->senders = cfg->size = -1;
    cfg->storms = cfg->concurrency = cfg->storm_concurrency = cfg->source_addrs = -1;
    cfg->rate = cfg->duration = cfg->drain = cfg->settle = cfg->timeout = -1;
    cfg->max_messages = cfg->max_connections = cfg->max_inflight = -1;
    cfg->churn_per_sec = cfg->churn_hold = cfg->presence_within = -1;
    cfg->drop = BN_DROP_RST;
    snprintf(cfg->room_prefix, sizeof(cfg->room_prefix), "bench");
}

static int parse_option(struct bn_config *cfg, int opt, const char *v)
{
    switch (opt) {
    case O_URL: cfg->nurls = 0; return parse_urls(cfg, v);
    case O_CLIENTS: return parse_count("clients", v, 1, 1000000, &cfg->clients);
    case O_ROOMS: return parse_count("rooms", v, 0, 1000000, &cfg->rooms);
    case O_SENDERS: return parse_count("senders", v, 1, 100000, &cfg->senders);
    case O_RATE: return parse_double("rate", v, 0.001, 10e6, &cfg->rate);
    case O_SIZE: return parse_count("size", v, 40, 60000, &cfg->size);
    case O_DURATION: return parse_double("duration", v, 0.1, 86400, &cfg->duration);
    case O_MAX_MESSAGES:
        return parse_long("max-messages", v, 1, 1000000000000LL, &cfg->max_messages);
    case O_MAX_CONNECTIONS:
        return parse_long("max-connections", v, 1, 1000000000000LL, &cfg->max_connections);
    case O_STORMS: return parse_count("storms", v, 1, 100, &cfg->storms);
    case O_DROP:
        if (strcmp(v, "rst") == 0)
            cfg->drop = BN_DROP_RST;
        else if (strcmp(v, "fin") == 0)
            cfg->drop = BN_DROP_FIN;
        else if (strcmp(v, "close") == 0)
            cfg->drop = BN_DROP_CLOSE;
        else
            return bad("--drop must be rst, fin or close, not '%s'", v);
        return 0;
    case O_DRAIN: return parse_double("drain", v, 0, 3600, &cfg->drain);
    case O_SETTLE: return parse_double("settle", v, 0, 3600, &cfg->settle);
    case O_TIMEOUT: return parse_double("timeout", v, 1, 7 * 86400, &cfg->timeout);
    case O_CONCURRENCY: return parse_count("connect-concurrency", v, 1, 1000000, &cfg->concurrency);
    case O_STORM_CONCURRENCY:
        return parse_count("storm-concurrency", v, 1, 1000000, &cfg->storm_concurrency);
    case O_SOURCES: return parse_count("source-addrs", v, 0, 254, &cfg->source_addrs);
    case O_MAX_INFLIGHT: return parse_long("max-inflight", v, 1, 100000000, &cfg->max_inflight);
    case O_PIDS: return parse_pids(cfg, v);
    case O_REDIS:
        if (!strchr(v, ':') || strlen(v) >= sizeof(cfg->redis))
            return bad("--redis must be HOST:PORT, not '%s'", v);
        snprintf(cfg->redis, sizeof(cfg->redis), "%s", v);
        return 0;
    case O_ROOM_PREFIX:
        if (strlen(v) < 1 || strlen(v) > 30 ||
            strspn(v, "abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") != strlen(v))
            return bad("--room-prefix must be 1-30 of [A-Za-z0-9._:-], not '%s'", v);
        snprintf(cfg->room_prefix, sizeof(cfg->room_prefix), "%s", v);
        return 0;
    case O_PRESENCE:
        if (strcmp(v, "events") != 0 && strcmp(v, "diff") != 0 && strcmp(v, "count") != 0)
            return bad("--presence must be events, diff or count, not '%s'", v);
        snprintf(cfg->presence, sizeof(cfg->presence), "%s", v);
        return 0;
    case O_CHURN: return parse_double("churn-per-sec", v, 0, 100000, &cfg->churn_per_sec);
    case O_CHURN_HOLD: return parse_double("churn-hold", v, 0, 3600, &cfg->churn_hold);
    case O_PRESENCE_WITHIN:
        return parse_double("presence-within", v, 0, 3600, &cfg->presence_within);
    case O_QUIET: cfg->quiet = true; return 0;
    }
    return 0;
}

#define DEFAULT(field, value)                                                                      \
    do {                                                                                           \
        if (cfg->field < 0)                                                                        \
            cfg->field = (value);                                                                  \
    } while (0)

/* Fills what was not given and checks the flags against each other. */
static int config_finish(struct bn_config *cfg)
{
    bool chat = cfg->mode == BN_FANOUT || cfg->mode == BN_STORM;
    if (cfg->nurls == 0 && parse_urls(cfg, "ws://127.0.0.1:8080/ws") < 0)
        return -1;
    DEFAULT(clients, cfg->mode == BN_CONNECT ? 50 : 1000);
    DEFAULT(rooms, chat ? 10 : 0);
    DEFAULT(senders, cfg->rooms > 0 ? cfg->rooms : 1);
    DEFAULT(rate, 100);
    DEFAULT(size, 100);
    DEFAULT(duration, cfg->mode == BN_STORM ? 3 : 10);
    DEFAULT(max_messages, 10000000);
    DEFAULT(max_connections, 1000000);
    DEFAULT(storms, 1);
    DEFAULT(drain, 5);
    DEFAULT(settle, 1);
    DEFAULT(concurrency, 1000);
    DEFAULT(storm_concurrency, cfg->clients);
    DEFAULT(source_addrs, 0);
    DEFAULT(max_inflight, 100000);
    if (cfg->churn_per_sec >= 0 && cfg->mode != BN_FANOUT)
        return bad("--churn-per-sec goes with fanout");
    if (cfg->presence_within >= 0 && cfg->mode != BN_STORM)
        return bad("--presence-within goes with storm");
    DEFAULT(churn_per_sec, 0);
    DEFAULT(churn_hold, 1);
    DEFAULT(presence_within, 10);
    if (chat && cfg->rooms < 1)
        return bad("%s needs --rooms of at least 1", cfg->mode == BN_FANOUT ? "fanout" : "storm");
    if (cfg->rooms > cfg->clients)
        return bad("--rooms must not exceed --clients");
    if (cfg->mode == BN_FANOUT && cfg->senders > cfg->clients)
        return bad("fanout: --senders must not exceed --clients");
    double setup = 30 + (double)(cfg->clients + cfg->senders) / 200;
    double runs = cfg->duration * (double)(cfg->mode == BN_STORM ? cfg->storms + 1 : 1);
    double storms = cfg->mode == BN_STORM ? (double)cfg->storms * setup * 2 : 0;
    DEFAULT(timeout, setup + runs + storms + cfg->drain + cfg->settle + 30);
    return 0;
}

static int parse_args(struct bn_config *cfg, int argc, char **argv)
{
    config_unset(cfg);
    int opt;
    while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (opt == O_HELP) {
            usage(stdout);
            return 1;
        }
        if (opt == O_VERSION) {
            printf("chat-bench %s\n", CHAT_VERSION);
            return 1;
        }
        if (opt == '?') {
            fprintf(stderr, "Try 'chat-bench --help'.\n");
            return -1;
        }
        if (parse_option(cfg, opt, optarg) < 0)
            return -1;
    }
    if (optind != argc - 1)
        return bad("expected one MODE (fanout, idle, connect or storm)%s%s",
                   optind < argc - 1 ? "; extra argument: " : "",
                   optind < argc - 1 ? argv[argc - 1] : "");
    const char *m = argv[optind];
    if (strcmp(m, "fanout") == 0)
        cfg->mode = BN_FANOUT;
    else if (strcmp(m, "idle") == 0)
        cfg->mode = BN_IDLE;
    else if (strcmp(m, "connect") == 0)
        cfg->mode = BN_CONNECT;
    else if (strcmp(m, "storm") == 0)
        cfg->mode = BN_STORM;
    else
        return bad("unknown mode '%s' (fanout, idle, connect or storm)", m);
    return config_finish(cfg);
}

static int setup(struct bn *b)
{
    const struct bn_config *cfg = &b->cfg;
    uint64_t seed = 0;
    b->epfd = -1;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    b->rng = seed | 1;
    snprintf(b->run_id, sizeof(b->run_id), "%08x", (unsigned)(bn_rand(b) >> 32));
    b->nconns = (uint32_t)cfg->clients + (cfg->mode == BN_STORM ? (uint32_t)cfg->senders : 0) +
                bn_churn_slots(cfg);
    b->nrooms = (uint32_t)cfg->rooms;
    b->concurrency = (uint32_t)cfg->concurrency;
    b->conns = calloc(b->nconns, sizeof(*b->conns));
    b->rooms = calloc(b->nrooms ? b->nrooms : 1, sizeof(*b->rooms));
    b->senders = calloc((size_t)cfg->senders, sizeof(*b->senders));
    if (!b->conns || !b->rooms || !b->senders) {
        fprintf(stderr, "chat-bench: out of memory\n");
        return -1;
    }
    bn_rooms_init(b);
    if (bn_raise_nofile((long)b->nconns) < 0 || bn_net_init(b) < 0)
        return -1;
    if (bn_churn_init(b, b->nconns - bn_churn_slots(cfg)) < 0) {
        fprintf(stderr, "chat-bench: out of memory\n");
        return -1;
    }
    return 0;
}

static void teardown(struct bn *b)
{
    bn_net_free(b);
    for (uint32_t i = 0; i < b->nrooms; i++)
        free(b->rooms[i].acked);
    free(b->rooms);
    free(b->conns);
    free(b->senders);
    free(b->churn.ring);
    free(b->churn.ring_gen);
    free(b->churn.leave_ns);
}

int main(int argc, char **argv)
{
    static struct bn b; /* large (histograms): not on the stack */
    int rc = parse_args(&b.cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;

    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    b.stop = &stop_flag;
    b.t_start_ns = b.last_progress_ns = bn_now_ns();
    b.deadline_ns = b.t_start_ns + (uint64_t)(b.cfg.timeout * 1e9);
    /* The backstop: if the loop itself ever hangs, the process still ends. */
    alarm((unsigned)b.cfg.timeout + 30);

    if (setup(&b) < 0) {
        teardown(&b);
        return 2;
    }
    switch (b.cfg.mode) {
    case BN_FANOUT: rc = bn_fanout_run(&b); break;
    case BN_IDLE: rc = bn_idle_run(&b); break;
    case BN_CONNECT: rc = bn_connect_run(&b); break;
    case BN_STORM: rc = bn_storm_run(&b); break;
    }
    teardown(&b);
    return rc;
}
