#include "cm_log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

static enum cm_log_level min_level = CM_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

/* Case-insensitive, so CHAT_LOG_LEVEL=INFO works as well as info. */
int cm_log_level_parse(const char *name, enum cm_log_level *out)
{
    static const char *const lower[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, lower[i]) == 0) {
            *out = (enum cm_log_level)i;
            return 0;
        }
    }
    return -1;
}

void cm_log_set_level(enum cm_log_level level)
{
    min_level = level;
}

int cm_log_enabled(enum cm_log_level level)
{
    return level >= min_level;
}

void cm_vlog(enum cm_log_level level, const char *fmt, va_list ap)
{
    if (!cm_log_enabled(level))
        return;
    if ((unsigned)level > CM_LOG_ERROR)
        level = CM_LOG_ERROR; /* an out-of-range level must not index past the names */

    struct timeval tv;
    struct tm tm;
    char stamp[32];
    char line[1024];

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    /* One write per line, so lines from several processes sharing a file
     * never interleave mid-line. */
    int n = snprintf(line, sizeof(line), "%s.%03ldZ %s ", stamp, (long)(tv.tv_usec / 1000),
                     level_names[level]);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

void cm_log(enum cm_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cm_vlog(level, fmt, ap);
    va_end(ap);
}
