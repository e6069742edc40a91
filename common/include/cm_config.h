/*
 * Configuration from command-line flags and CHAT_* environment variables.
 *
 * Each binary describes its options once, in a table of struct cm_option;
 * that one table drives parsing, the environment look-up (CHAT_ + the flag
 * in upper case, '-' as '_'), defaults, range checks and --help. Flags win
 * over the environment, the environment over defaults.
 *
 * String values point into argv, the environment or the table's defaults,
 * all of which live as long as the process: nothing here needs freeing.
 */
#ifndef CM_CONFIG_H
#define CM_CONFIG_H

#include <stddef.h>

enum cm_opt_type {
    CM_OPT_STR,  /* const char * */
    CM_OPT_INT,  /* long long, within [min, max] */
    CM_OPT_FLAG, /* int, 0 or 1; the flag takes no value (env: 1/0/true/false) */
};

struct cm_option {
    const char *name;  /* long flag without dashes, e.g. "history-max" */
    enum cm_opt_type type;
    size_t offset;     /* where the value lives in the caller's config struct */
    const char *def;   /* default, as text; NULL for none */
    const char *meta;  /* placeholder shown in --help, e.g. "N" */
    const char *help;  /* one line for --help */
    long long min, max;
    /* Optional extra check of a string value; returns 0 or writes a reason
     * into err and returns -1. */
    int (*check)(const char *value, char *err, size_t errlen);
};

struct cm_program {
    const char *name;    /* e.g. "chat-gateway" */
    const char *version;
    const char *summary; /* one line shown at the top of --help */
};

enum { CM_CONFIG_OK = 0, CM_CONFIG_EXIT = 1, CM_CONFIG_ERROR = -1 };

/*
 * Fills cfg from defaults, the environment and argv. Returns CM_CONFIG_OK;
 * CM_CONFIG_EXIT after printing --help or --version to stdout (the caller
 * exits 0); or CM_CONFIG_ERROR after printing a one-line reason and a hint to
 * stderr (the caller exits 2).
 */
int cm_config_parse(const struct cm_program *prog, const struct cm_option *opts, size_t nopts,
                    void *cfg, int argc, char **argv);

/* Prints --help for the table to f (a FILE *). */
void cm_config_usage(const struct cm_program *prog, const struct cm_option *opts, size_t nopts,
                     void *f);

/* Parses "host:port" or "[v6]:port" into host (NUL-terminated) and port.
 * Returns 0, or -1 with a reason in err. */
int cm_hostport_parse(const char *s, char *host, size_t hostlen, int *port, char *err,
                      size_t errlen);

/* A cm_option.check for "host:port". */
int cm_check_hostport(const char *value, char *err, size_t errlen);

/* Room-style identifier check used for --id: 1-64 of [A-Za-z0-9._:-]. */
int cm_check_id(const char *value, char *err, size_t errlen);

#endif
