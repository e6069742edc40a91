/*
 * Logging: one line per event on stderr, with a level and a component.
 *
 *   2026-11-21T08:58:13.475Z INFO gateway listening on 127.0.0.1:8080
 *
 * The level is process-wide and set once at start-up from the config; it is
 * the only piece of mutable state in common/ that is not passed explicitly,
 * because threading a logger through every call would add noise and no
 * safety (both binaries are single-threaded).
 */
#ifndef CM_LOG_H
#define CM_LOG_H

#include <stdarg.h>

enum cm_log_level { CM_LOG_DEBUG, CM_LOG_INFO, CM_LOG_WARN, CM_LOG_ERROR };

/* Parses "debug", "info", "warn" or "error"; returns 0, or -1 if unknown. */
int cm_log_level_parse(const char *name, enum cm_log_level *out);

void cm_log_set_level(enum cm_log_level level);
int cm_log_enabled(enum cm_log_level level);

void cm_log(enum cm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cm_vlog(enum cm_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define CM_DEBUG(...) do { if (cm_log_enabled(CM_LOG_DEBUG)) cm_log(CM_LOG_DEBUG, __VA_ARGS__); } while (0)
#define CM_INFO(...)  cm_log(CM_LOG_INFO, __VA_ARGS__)
#define CM_WARN(...)  cm_log(CM_LOG_WARN, __VA_ARGS__)
#define CM_ERROR(...) cm_log(CM_LOG_ERROR, __VA_ARGS__)

#endif
