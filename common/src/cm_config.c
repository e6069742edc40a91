#include "cm_config.h"

#include "cm_proto.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void env_name(const char *flag, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "CHAT_");
    for (const char *p = flag; *p && n + 1 < outlen; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

static int set_value(const struct cm_option *o, void *cfg, const char *value, const char *source)
{
    char *slot = (char *)cfg + o->offset;
    char err[160] = "";

    switch (o->type) {
    case CM_OPT_STR:
        if (o->check && o->check(value, err, sizeof(err)) != 0)
            goto bad;
        *(const char **)slot = value;
        return 0;
    case CM_OPT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        /* strtoll skips leading spaces and takes '+': " 5" is not a number here. */
        bool starts_ok = isdigit((unsigned char)value[0]) ||
                         (value[0] == '-' && isdigit((unsigned char)value[1]));
        if (!starts_ok || errno || *end != '\0') {
            snprintf(err, sizeof(err), "not a whole number");
            goto bad;
        }
        if (v < o->min || v > o->max) {
            snprintf(err, sizeof(err), "must be between %lld and %lld", o->min, o->max);
            goto bad;
        }
        *(long long *)slot = v;
        return 0;
    }
    case CM_OPT_FLAG:
        if (!strcmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes"))
            *(int *)slot = 1;
        else if (!strcmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no"))
            *(int *)slot = 0;
        else {
            snprintf(err, sizeof(err), "expected 1/0/true/false");
            goto bad;
        }
        return 0;
    }
bad:
    fprintf(stderr, "error: invalid value '%s' for --%s (from %s): %s\n", value, o->name, source,
            err);
    return -1;
}

void cm_config_usage(const struct cm_program *prog, const struct cm_option *opts, size_t nopts,
                     void *fp)
{
    FILE *f = fp;
    fprintf(f,
            "%s %s: %s\n\nUsage: %s [options]\n\nOptions (each also read from the environment "
            "variable shown; flags win):\n",
            prog->name, prog->version, prog->summary, prog->name);
    for (size_t i = 0; i < nopts; i++) {
        const struct cm_option *o = &opts[i];
        char left[64], env[64];
        env_name(o->name, env, sizeof(env));
        if (o->type == CM_OPT_FLAG)
            snprintf(left, sizeof(left), "--%s", o->name);
        else
            snprintf(left, sizeof(left), "--%s %s", o->name, o->meta ? o->meta : "VALUE");
        fprintf(f, "  %-28s %s\n  %-28s [%s%s%s]\n", left, o->help, "", env,
                o->def ? ", default " : "", o->def ? o->def : "");
    }
    fprintf(f, "  %-28s %s\n  %-28s %s\n", "--help", "show this help and exit", "--version",
            "show the version and exit");
}

/* Reports a getopt failure: an unknown option, a missing value, or a value
 * given to an option that takes none. */
static void report_bad_option(const struct cm_program *prog, const struct cm_option *opts,
                              char **argv)
{
    if (optopt >= 256 && opts[optopt - 256].type == CM_OPT_FLAG)
        fprintf(stderr, "error: --%s takes no value\n", opts[optopt - 256].name);
    else if (optopt >= 256)
        fprintf(stderr, "error: --%s needs a value\n", opts[optopt - 256].name);
    else if (optopt > 0)
        fprintf(stderr, "error: unknown option '-%c'\n", optopt);
    else
        fprintf(stderr, "error: unknown option '%s'\n", argv[optind - 1]);
    fprintf(stderr, "Try '%s --help'.\n", prog->name);
}

/*
 * Reads argv into given[] (one value per option, the last one winning;
 * "1" for a flag) without applying anything, so that --help and --version
 * answer whatever the environment holds. Returns a CM_CONFIG_* code.
 */
static int scan_argv(const struct cm_program *prog, const struct cm_option *opts, size_t nopts,
                     const char **given, int argc, char **argv)
{
    struct option *longopts = cm_calloc(nopts + 3, sizeof(*longopts));
    int rc = CM_CONFIG_OK;

    for (size_t i = 0; i < nopts; i++)
        longopts[i] = (struct option){opts[i].name,
                                      opts[i].type == CM_OPT_FLAG ? no_argument : required_argument,
                                      NULL, (int)(i + 256)};
    longopts[nopts] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[nopts + 1] = (struct option){"version", no_argument, NULL, 'V'};

    optind = 0; /* glibc: 0 resets all of getopt's state, so a second parse starts clean */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "hV", longopts, NULL);
        if (c == -1)
            break;
        if (c == 'h' || c == 'V') {
            if (c == 'h')
                cm_config_usage(prog, opts, nopts, stdout);
            else
                printf("%s %s\n", prog->name, prog->version);
            rc = CM_CONFIG_EXIT;
            break;
        }
        if (c < 256) {
            report_bad_option(prog, opts, argv);
            rc = CM_CONFIG_ERROR;
            break;
        }
        given[c - 256] = opts[c - 256].type == CM_OPT_FLAG ? "1" : optarg;
    }
    if (rc == CM_CONFIG_OK && optind < argc) {
        fprintf(stderr, "error: unexpected argument '%s'\nTry '%s --help'.\n", argv[optind],
                prog->name);
        rc = CM_CONFIG_ERROR;
    }
    free(longopts);
    return rc;
}

/*
 * Parses argv first, then gives each option the first value it has among
 * flag, environment and default. Only that winning value is checked, so a
 * bad CHAT_* variable that a flag overrides does not stop the program.
 */
int cm_config_parse(const struct cm_program *prog, const struct cm_option *opts, size_t nopts,
                    void *cfg, int argc, char **argv)
{
    const char **given = cm_calloc(nopts + 1, sizeof(*given));
    int rc = scan_argv(prog, opts, nopts, given, argc, argv);

    for (size_t i = 0; rc == CM_CONFIG_OK && i < nopts; i++) {
        char env[64];
        env_name(opts[i].name, env, sizeof(env));
        const char *v = getenv(env);
        int r = 0;
        if (given[i])
            r = set_value(&opts[i], cfg, given[i], "command line");
        else if (v)
            r = set_value(&opts[i], cfg, v, env);
        else if (opts[i].def)
            r = set_value(&opts[i], cfg, opts[i].def, "default");
        if (r != 0)
            rc = CM_CONFIG_ERROR;
    }
    free(given);
    return rc;
}

/* True for 1..5 decimal digits and nothing else: strtol alone would also
 * take signs and leading spaces. */
static bool all_digits(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9')
            return false;
    }
    return n >= 1 && n <= 5;
}

/*
 * An IPv6 address must be in brackets: "::1:80" is ambiguous, so a bare host
 * with a colon is refused rather than guessed at.
 */
int cm_hostport_parse(const char *s, char *host, size_t hostlen, int *port, char *err,
                      size_t errlen)
{
    const char *colon;
    const char *h = s;
    size_t hlen;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "expected [ipv6]:port");
            return -1;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            snprintf(err, errlen, "expected host:port");
            return -1;
        }
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen) || memchr(s, '[', hlen) || memchr(s, ']', hlen)) {
            snprintf(err, errlen, "an IPv6 address needs brackets, e.g. [::1]:8080");
            return -1;
        }
    }
    if (hlen == 0 || hlen >= hostlen) {
        snprintf(err, errlen, "missing or overlong host");
        return -1;
    }
    long p = all_digits(colon + 1) ? strtol(colon + 1, NULL, 10) : -1;
    if (p < 0 || p > 65535) {
        snprintf(err, errlen, "port must be a number from 0 to 65535");
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

int cm_check_hostport(const char *value, char *err, size_t errlen)
{
    char host[256];
    int port;
    return cm_hostport_parse(value, host, sizeof(host), &port, err, errlen);
}

int cm_check_id(const char *value, char *err, size_t errlen)
{
    if (!cm_room_valid(value, strlen(value))) {
        snprintf(err, errlen, "must be 1-64 characters of A-Z a-z 0-9 . _ : -");
        return -1;
    }
    return 0;
}
