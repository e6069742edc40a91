/*
 * The Lua scripts run inside Redis, embedded at build time from
 * the .lua files in common/scripts (see cmake/embed.cmake). Each is loaded with SCRIPT
 * LOAD when a connection comes up and run with EVALSHA; a caller that gets
 * NOSCRIPT (the cache was flushed) loads them again.
 */
#ifndef CM_SCRIPTS_H
#define CM_SCRIPTS_H

enum cm_script { CM_SCRIPT_PUBLISH, CM_SCRIPT_JOIN, CM_SCRIPT_LEAVE, CM_SCRIPT_MEMBERS,
                 CM_SCRIPT_HISTORY, CM_SCRIPT_CLAIM_GATEWAYS, CM_SCRIPT_FINISH_GATEWAY,
                 CM_SCRIPT_RETENTION, CM_SCRIPT_PRUNE_CONSUMERS, CM_SCRIPT_REASSERT,
                 CM_SCRIPT_EPOCH_BUMP, CM_SCRIPT__COUNT };

/* The source of a script, NUL-terminated, static. */
const char *cm_script_source(enum cm_script s);
/* Its name, for logs: "publish", "join", ... */
const char *cm_script_name(enum cm_script s);

#endif
