/*
 * Prometheus text exposition (version 0.0.4), shared by both binaries'
 * /metrics endpoints.
 */
#ifndef CM_METRICS_H
#define CM_METRICS_H

#include "cm_util.h"

/* The HELP and TYPE lines of a metric family; type is "counter" or "gauge". */
void cm_metric_header(struct cm_sbuf *b, const char *name, const char *type, const char *help);
/* A family with one unlabelled sample. */
void cm_metric(struct cm_sbuf *b, const char *name, const char *type, const char *help,
               unsigned long long value);

#endif
