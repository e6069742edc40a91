/*
 * The libevent side of common/cm_link: hiredis's libevent adapter and
 * one-shot timers on the worker's event_base. No name resolution: hiredis
 * resolves the Redis host itself (a blocking getaddrinfo on each connect),
 * as the worker always has.
 */
#ifndef WK_LOOP_H
#define WK_LOOP_H

struct cm_link_loop;
struct event_base;

/* A loop for base; free it with wk_loop_free after every link that uses it
 * is freed. Never NULL (allocation failure aborts). */
struct cm_link_loop *wk_loop_new(struct event_base *base);
/* Accepts NULL. */
void wk_loop_free(struct cm_link_loop *loop);

#endif
