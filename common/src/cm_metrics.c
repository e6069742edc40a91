#include "cm_metrics.h"

void cm_metric_header(struct cm_sbuf *b, const char *name, const char *type, const char *help)
{
    cm_sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void cm_metric(struct cm_sbuf *b, const char *name, const char *type, const char *help,
               unsigned long long value)
{
    cm_metric_header(b, name, type, help);
    cm_sbuf_printf(b, "%s %llu\n", name, value);
}
