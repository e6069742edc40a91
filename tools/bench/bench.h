/*
 * chat-bench: a load generator that speaks docs/PROTOCOL.md over its own
 * minimal WebSocket client on epoll. One thread, one context (struct bn)
 * owned by main and passed explicitly; no allocation per received message
 * on the fast path. The only mutable state outside it is the signal flag in
 * main.c.
 *
 * Layers, bottom up:
 *   bn_net.c    sockets on epoll: connect (with source addresses), buffered
 *               writes, the read path, timeouts, the event loop
 *   bn_ws.c     RFC 6455 client: upgrade handshake, masked frames out,
 *               unmasked (also fragmented) frames in, ping/pong, close
 *   bn_chat.c   the chat protocol: join, send, receive (fast path for
 *               message and ack frames), seq accounting, loss
 *   bn_send.c   the open-loop pacer of the senders
 *   bn_fanout.c, bn_idle.c, bn_connect.c, bn_storm.c   the four modes
 *   bn_churn.c  members that join and leave while fanout measures
 *   bn_http.c   one blocking HTTP GET: the members endpoint (storm's check)
 *   bn_hist.c, bn_proc.c, bn_redis.c, bn_report.c   measuring and reporting
 */
#ifndef BN_BENCH_H
#define BN_BENCH_H

#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BN_MAX_URLS 16
#define BN_MAX_PIDS 16
#define BN_ROOM_MAX 64
#define BN_EPOCH_MAX 64
#define BN_SCRATCH (16u << 20)               /* read buffer: the largest frame we accept */
#define BN_HANDSHAKE_MAX 8192                /* bytes of HTTP response headers */
#define BN_CONNECT_TIMEOUT_NS 15000000000ull /* TCP connect + upgrade */
#define BN_CLOSE_TIMEOUT_NS 3000000000ull    /* waiting for the server's close */
#define BN_NS 1000000000ull

enum bn_mode { BN_FANOUT, BN_IDLE, BN_CONNECT, BN_STORM };
enum bn_drop { BN_DROP_RST, BN_DROP_FIN, BN_DROP_CLOSE };

struct bn_url {
    char text[256];
    char host[128]; /* for the Host header */
    char path[128];
    struct sockaddr_in addr;
};

struct bn_pid {
    char name[32];
    int pid;
};

struct bn_config {
    enum bn_mode mode;
    struct bn_url urls[BN_MAX_URLS];
    int nurls;
    long clients; /* connections (connect mode: concurrent slots) */
    long rooms;   /* 0: no join */
    long senders;
    double rate;     /* messages per second, all senders together */
    long size;       /* chat message text bytes */
    double duration; /* seconds, meaning per mode (see --help) */
    long long max_messages;
    long long max_connections;
    long storms;
    enum bn_drop drop;
    double timeout;         /* hard bound on the whole run, seconds */
    long concurrency;       /* connection attempts in flight while setting up */
    long storm_concurrency; /* the same during a storm */
    long source_addrs;      /* 0: auto */
    struct bn_pid pids[BN_MAX_PIDS];
    int npids;
    char redis[160]; /* HOST:PORT for INFO commandstats, "" for none */
    char room_prefix[32];
    char presence[8]; /* the joins' "presence" (events, diff, count); "" to leave it out */
    double drain;     /* seconds to wait for acks and deliveries */
    double settle;    /* seconds between the last join and measuring */
    long long max_inflight;
    double churn_per_sec;   /* fanout: churn members started per second; 0: none */
    double churn_hold;      /* fanout: seconds a churn member stays joined */
    double presence_within; /* storm: seconds from a drop to right member lists; 0: no check */
    bool quiet;
};

/* Latency histogram: HdrHistogram-like, 128 sub-buckets per power of two,
 * so a reported value is within 0.4% of the true one. Values in ns. */
#define BN_HIST_BUCKETS (256 + 56 * 128)
struct bn_hist {
    uint64_t count;
    uint64_t max;
    uint64_t min;
    uint64_t counts[BN_HIST_BUCKETS];
};

enum bn_conn_state {
    BN_IDLE_SLOT = 0, /* no socket */
    BN_QUEUED,        /* waiting for a connect slot */
    BN_CONNECTING,    /* TCP connect in progress */
    BN_HANDSHAKE,     /* upgrade request sent, reading the response */
    BN_OPEN,          /* WebSocket open */
    BN_CLOSING,       /* our close frame sent, waiting for the server */
};

/* Flags of a connection. */
enum {
    BN_F_SENDER = 1 << 0,   /* sends chat messages */
    BN_F_JOINED = 1 << 1,   /* its room's `joined` arrived */
    BN_F_WELCOMED = 1 << 2, /* `welcome` arrived */
    BN_F_REJOIN = 1 << 3,   /* reconnecting after a drop: join with since */
    BN_F_EVER_JOINED = 1 << 4,
    BN_F_WRITE_WAIT = 1 << 5, /* EPOLLOUT armed for buffered writes */
    BN_F_CLOSE_SENT = 1 << 6,
    BN_F_SHUT = 1 << 7,    /* we are done with it: do not reconnect */
    BN_F_DROPPED = 1 << 8, /* storm: dropped, not yet joined again */
    BN_F_JOINING = 1 << 9, /* join sent, reply not yet here */
    BN_F_RETRY = 1 << 10,  /* join answered `unavailable`: sent again at retry_ns */
    BN_F_CHURN = 1 << 11,  /* a churn member: joins, stays churn_hold, leaves, again */
};

/* One client connection. Kept small: 50,000 of them must fit comfortably,
 * and buffers exist only while a partial frame or write is pending. */
struct bn_conn {
    int fd;
    uint32_t gen;  /* bumped per socket: stale epoll events are ignored */
    uint32_t id;   /* index in b->conns */
    uint8_t state; /* enum bn_conn_state */
    uint8_t url;   /* index in cfg.urls */
    uint16_t flags;
    int32_t room;        /* index in b->rooms, -1 for none */
    uint16_t close_code; /* the server's close code, 0 if none */
    uint8_t fragop;      /* opcode of the fragmented message being reassembled */
    int64_t base_seq;    /* the room's seq when first joined */
    int64_t last_seq;    /* highest seq received in its room */
    uint64_t received;   /* distinct bench messages received */
    uint64_t t0_ns;      /* connect started, or the drop of a storm */
    uint64_t retry_ns;   /* when BN_F_RETRY: the join goes again then */
    uint32_t inflight;   /* sender: messages sent and not answered */
    uint32_t cycle;      /* connect mode: connections made by this slot */
    char accept[29];     /* the Sec-WebSocket-Accept we expect */
    char *rbuf;          /* bytes of an incomplete frame or response */
    uint32_t rlen;
    char *wbuf; /* bytes the socket did not take yet */
    uint32_t wlen, woff, wcap;
    char *frag; /* a fragmented message being reassembled */
    uint32_t fraglen;
};

struct bn_room {
    char name[BN_ROOM_MAX + 1];
    char epoch[BN_EPOCH_MAX + 1];
    uint32_t members;
    int64_t max_acked; /* highest acked seq */
    int64_t *acked;    /* seqs of acknowledged bench messages */
    size_t nacked, cap;
};

/* Counters; every one appears in the report. */
struct bn_stats {
    uint64_t connects_ok;
    uint64_t connect_failures;
    uint64_t disconnects;    /* an open connection we did not close */
    uint64_t close_codes[5]; /* 1000, 1001, 1008, 1013, other */
    uint64_t sent;
    uint64_t throttled; /* send slots skipped: --max-inflight reached */
    uint64_t acked;
    uint64_t send_errors; /* error frames answering a message */
    uint64_t other_errors;
    uint64_t rate_limited;
    uint64_t received;         /* bench messages, live */
    uint64_t history_received; /* bench messages from a joined history */
    uint64_t foreign;          /* message frames not sent by this run */
    uint64_t duplicates;
    uint64_t gaps;
    uint64_t gap_missing;
    uint64_t presence;
    uint64_t joins_ok;
    uint64_t join_errors;
    uint64_t join_unavailable; /* joins answered `unavailable` (then retried) */
    uint64_t recovered;
    uint64_t not_recovered;
    uint64_t recovery_gaps;
    uint64_t protocol_errors;
    uint64_t frames_in;
    uint64_t bytes_in;
    uint64_t pongs;
    uint64_t pings;
    uint64_t reconnect_frames;
    uint64_t early_messages; /* a message before the room's `joined` */
    uint64_t unanswered;     /* messages whose sender went away before the ack */
    uint64_t epoch_changes;
    uint64_t churn_received; /* bench messages to churn members (not in loss or latency) */
    uint64_t churn_duplicates;
    uint64_t churn_gaps;
};

struct bn_proc_sample {
    double cpu_s; /* utime + stime */
    long rss_kib; /* VmRSS */
    long hwm_kib; /* VmHWM */
    bool ok;
};

struct bn_redis_stats {
    bool ok;
    int n;
    char names[64][32];
    uint64_t calls[64];
};

struct bn;

/* Churn (fanout --churn-per-sec): a pool of extra connections after the
 * measured ones. One starts every 1/rate s: it connects, joins its room,
 * stays churn_hold s and closes (the gateway's leave); then its slot is
 * free for the next start. Leaves are due in join order: a ring. */
struct bn_churn {
    uint32_t first, n; /* the pool: conns [first, first + n) */
    uint32_t next;     /* where the search for a free slot starts */
    bool on;
    uint64_t t0_ns, t1_ns; /* the churn window */
    uint64_t slots;        /* starts due so far */
    uint64_t started, joined, left, skipped, failed;
    uint32_t *ring;     /* ids of joined churn members, in join order */
    uint64_t *leave_ns; /* when each leaves */
    uint32_t *ring_gen; /* the connection's gen at its join */
    uint32_t rhead, rlen;
    struct bn_hist join_lat; /* connect start -> joined */
};

/* What a mode adds to the generic client: called by bn_chat.c. All may be
 * NULL. */
struct bn_ops {
    void (*on_open)(struct bn *b, struct bn_conn *c);  /* upgrade done */
    void (*on_ready)(struct bn *b, struct bn_conn *c); /* welcome (no room) or joined */
    void (*on_closed)(struct bn *b, struct bn_conn *c, bool failed); /* socket gone */
};

struct bn {
    struct bn_config cfg;
    struct bn_ops ops;
    void *mode; /* the running mode's own state */
    int epfd;
    char *scratch; /* BN_SCRATCH bytes */
    struct bn_conn *conns;
    uint32_t nconns;
    struct bn_room *rooms;
    uint32_t nrooms;
    uint32_t *queue; /* connections waiting for a connect slot (ring) */
    uint32_t qhead, qlen;
    uint32_t pending;        /* connects/handshakes in flight */
    uint32_t joining;        /* joins sent and not answered */
    uint32_t concurrency;    /* connects + joins that may be in flight now */
    uint32_t open;           /* connections in BN_OPEN */
    uint32_t ready;          /* connections that got welcome/joined and count as up */
    struct in_addr *sources; /* source addresses, or NULL to let the kernel pick */
    uint32_t nsources;
    uint64_t rng;
    uint64_t msg_id;
    uint32_t *senders; /* connection ids that send, in turn */
    uint32_t nsenders;
    bool sending;      /* the pacer is on */
    double send_for_s; /* the pacer stops after this long */
    uint64_t slots;    /* send slots elapsed since t_send0 */
    char run_id[9];
    struct bn_stats st;
    struct bn_hist lat;              /* send -> receipt of live bench messages */
    struct bn_hist lat_sec;          /* the same over the last progress interval */
    struct bn_hist conn_lat;         /* connect start -> ready */
    struct bn_hist rejoin_lat;       /* storm: drop -> joined again */
    uint64_t t_start_ns;             /* the run began */
    uint64_t deadline_ns;            /* hard bound */
    uint64_t t_send0_ns, t_send1_ns; /* sending window */
    uint64_t t_last_rx_ns;           /* last live bench message */
    uint64_t last_progress_ns;
    uint64_t prog_sent, prog_received;
    uint64_t last_sweep_ns;
    struct bn_churn churn;
    uint32_t connect_errno;      /* the last connect error, for the report */
    char problem[256];           /* the first thing that went wrong, for people */
    unsigned problems;           /* how many; only the first 10 go to stderr */
    volatile sig_atomic_t *stop; /* set by SIGINT/SIGTERM */
};

/* bn_net.c */
uint64_t bn_now_ns(void);
int bn_net_init(struct bn *b);
void bn_net_free(struct bn *b);
/* Queues c for a connect to cfg.urls[c->url]; the loop starts it when a
 * slot is free (cfg.concurrency). */
void bn_conn_queue(struct bn *b, struct bn_conn *c);
/* Sends bytes (already a WebSocket frame); buffers what the socket does not
 * take. Returns 0, or -1 when the connection is gone. */
int bn_conn_write(struct bn *b, struct bn_conn *c, const void *data, size_t len);
/* Drops the socket now: RST (abort) or FIN. Calls ops.on_closed. */
void bn_conn_drop(struct bn *b, struct bn_conn *c, bool rst, bool failed);
/* Sends a close frame (code) and waits for the server's close, bounded. */
void bn_conn_close(struct bn *b, struct bn_conn *c, uint16_t code);
/* Runs the loop until done(b) is true (returns 0), the phase deadline
 * passes (1; 0 means none), the hard deadline passes (-1) or a stop signal
 * arrives (-2). tick, if set, runs every iteration before waiting (it sends
 * paced messages); it returns the longest wait it allows, in ns. */
int bn_run(struct bn *b, bool (*done)(struct bn *), int64_t (*tick)(struct bn *),
           uint64_t phase_deadline_ns);
/* Records the first problem for the report (printf-like). */
void bn_problem(struct bn *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes the progress line if a second has passed (unless --quiet). */
void bn_progress(struct bn *b, bool force);

/* bn_ws.c */
/* Builds the upgrade request into buf; fills c->accept. Returns its length. */
size_t bn_ws_request(struct bn *b, struct bn_conn *c, char *buf, size_t cap);
/* Parses the response in buf; returns bytes consumed (>0), 0 if incomplete,
 * -1 if the upgrade failed (the reason goes to bn_problem). */
long bn_ws_response(struct bn *b, struct bn_conn *c, const char *buf, size_t len);
/* Parses frames in buf, dispatching text messages to bn_chat_on_text and
 * answering pings and closes. Returns bytes consumed, or -1 to drop the
 * connection (protocol error). */
long bn_ws_frames(struct bn *b, struct bn_conn *c, char *buf, size_t len, uint64_t now);
/* Masks and sends one frame. Returns 0 or -1. */
int bn_ws_send(struct bn *b, struct bn_conn *c, int opcode, const char *payload, size_t len);
/* The Sec-WebSocket-Accept for a key: base64(SHA-1(key ++ GUID)), 28 chars + NUL. */
void bn_ws_accept_key(const char *key, char out[29]);

/* bn_chat.c */
void bn_chat_on_open(struct bn *b, struct bn_conn *c);
void bn_chat_on_text(struct bn *b, struct bn_conn *c, const char *p, size_t n, uint64_t now);
/* Sends a join again whose retry time has come (called by the sweep). */
void bn_chat_retry(struct bn *b, struct bn_conn *c, uint64_t now);
/* Sends one bench message from c to its room. Returns 0 or -1. */
int bn_chat_send(struct bn *b, struct bn_conn *c);
/* Expected deliveries (every acked message to every member joined before
 * it), and the part of them that did not arrive. */
void bn_chat_loss(struct bn *b, uint64_t *expected, uint64_t *loss, uint64_t *extra);
/* True when every acked message has reached every open member. */
bool bn_chat_drained(struct bn *b);
uint64_t bn_chat_inflight(const struct bn *b);
void bn_rooms_init(struct bn *b);

/* bn_send.c: paced sending, open loop: slot k is due at t_send0 + k/rate
 * and goes to senders[k % nsenders]; a slot that finds --max-inflight
 * messages unanswered is skipped (counted as throttled), never delayed. */
void bn_send_start(struct bn *b);
void bn_send_stop(struct bn *b);
/* Sends what is due; returns ns until the next slot (a bn_run tick). */
int64_t bn_send_tick(struct bn *b);
/* Sending has ended: the duration passed or --max-messages were sent. */
bool bn_send_finished(struct bn *b);

struct bn_json;

/* bn_churn.c */
/* Churn slots --churn-per-sec and --churn-hold need (0 without churn). */
uint32_t bn_churn_slots(const struct bn_config *cfg);
/* Marks conns [first, first + n) as the churn pool; 0 or -1 (memory). */
int bn_churn_init(struct bn *b, uint32_t first);
void bn_churn_start(struct bn *b);
void bn_churn_stop(struct bn *b);
/* Starts and ends churn members that are due; ns until the next (a tick). */
int64_t bn_churn_tick(struct bn *b);
/* The mode's on_ready and on_closed for churn members: true if c was one. */
bool bn_churn_on_ready(struct bn *b, struct bn_conn *c);
bool bn_churn_on_closed(struct bn *b, struct bn_conn *c);
/* "churn": {...} in the JSON and a line for people. */
void bn_churn_report(struct bn *b, struct bn_json *j);

/* bn_http.c */
/* GET path from the gateway of u (HTTP/1.1, Connection: close, 3 s
 * timeouts). Returns the status and a malloc'd NUL-terminated body in
 * *body, or -1 (nothing to free). */
int bn_http_get(const struct bn_url *u, const char *path, char **body);

/* bn_hist.c */
void bn_hist_reset(struct bn_hist *h);
void bn_hist_add(struct bn_hist *h, uint64_t v);
/* The value at quantile q (0..1), ns; 0 when empty. */
uint64_t bn_hist_quantile(const struct bn_hist *h, double q);
void bn_hist_merge(struct bn_hist *dst, const struct bn_hist *src);

/* bn_proc.c */
void bn_proc_read(int pid, struct bn_proc_sample *out);
void bn_proc_read_all(const struct bn *b, struct bn_proc_sample *out);
double bn_self_cpu_s(void); /* this process: user + system seconds */
double bn_self_user_s(void);
double bn_self_sys_s(void);
/* Busy CPU seconds of the whole machine so far (/proc/stat, all CPUs): with
 * the servers' and our own, it shows what else ran during a measurement. */
double bn_machine_busy_s(void);
/* Raises RLIMIT_NOFILE for n connections; returns 0 or -1 (message printed). */
int bn_raise_nofile(long n);

/* bn_redis.c */
/* A blocking TCP connection to HOST:PORT with 3 s send and receive
 * timeouts; the fd or -1. */
int bn_tcp_connect(const char *hostport);
/* Reads INFO commandstats from host:port; out->ok false on failure. */
void bn_redis_commandstats(const char *hostport, struct bn_redis_stats *out);

/* bn_report.c: the human summary (stdout) and the one JSON line that ends
 * it. A bn_json collects "key":value pairs; nested objects are written with
 * bn_json_open/bn_json_close. */
struct bn_json {
    char *buf;
    size_t len, cap;
    bool first; /* no member written yet at the current nesting level */
};
void bn_json_init(struct bn_json *j);
void bn_json_free(struct bn_json *j);
void bn_json_num(struct bn_json *j, const char *key, double v);
void bn_json_int(struct bn_json *j, const char *key, long long v);
void bn_json_str(struct bn_json *j, const char *key, const char *v);
void bn_json_bool(struct bn_json *j, const char *key, bool v);
void bn_json_open(struct bn_json *j, const char *key, char bracket); /* key NULL in arrays */
void bn_json_close(struct bn_json *j, char bracket);
/* Latency percentiles of h in microseconds: {"count","p50","p90","p99","p999","max"}. */
void bn_json_latency(struct bn_json *j, const char *key, const struct bn_hist *h);
/* The servers' CPU seconds between two samples and their memory, per pid
 * and in total; also printed for people. Returns the CPU seconds total. */
double bn_report_servers(struct bn *b, struct bn_json *j, const struct bn_proc_sample *before,
                         const struct bn_proc_sample *after);
/* Redis commands between two INFO commandstats, per published message. */
void bn_report_redis(struct bn_json *j, const struct bn_redis_stats *before,
                     const struct bn_redis_stats *after, uint64_t messages);
/* Counters every mode reports: connections, errors, close codes. */
void bn_report_common(struct bn *b, struct bn_json *j);
/* Prints a latency line for people: "label p50 ... max ...". */
void bn_print_latency(const char *label, const struct bn_hist *h);
/* Prints the JSON line (the last line on stdout) and frees j. */
void bn_report_finish(struct bn *b, struct bn_json *j, bool ok);
/* Names lost deliveries and deliveries of never-acked messages as problems
 * (fanout and storm share the accounting). */
void bn_report_delivery_problems(struct bn *b, uint64_t loss, uint64_t expected, uint64_t extra);
/* "1.23 ms" style text into buf. */
const char *bn_fmt_ns(uint64_t ns, char *buf, size_t len);

/* modes */
int bn_fanout_run(struct bn *b);
int bn_idle_run(struct bn *b);
int bn_connect_run(struct bn *b);
int bn_storm_run(struct bn *b);

/* Helpers shared by the modes (bn_chat.c). */
bool bn_all_settled(struct bn *b); /* no connect queued or in flight */
void bn_open_all(struct bn *b, uint32_t from, uint32_t n);
void bn_close_all(struct bn *b);
uint64_t bn_rand(struct bn *b);

#endif
