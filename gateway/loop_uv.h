/*
 * The libuv side of common/cm_link: hiredis's event hooks on the gateway's
 * loop, timers, and host names resolved on libuv's thread pool.
 */
#ifndef GW_LOOP_UV_H
#define GW_LOOP_UV_H

#include "cm_link.h"

#include <uv.h>

/* Fills out for loop; out must outlive every link that uses it. */
void gw_loop_uv_init(struct cm_link_loop *out, uv_loop_t *loop);

#endif
