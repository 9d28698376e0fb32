/*
 * The node's native addon: SRTP's AES-GCM with a context per key (srtp_gcm.c), datagrams sent on
 * the node's UDP sockets without Node's per-send objects (udp_send.c), and read from them without
 * Node's per-datagram ArrayBuffer (udp_recv.c); and what the C allocator holds (malloc_stats.c).
 * Each is optional: the JavaScript side checks for each function and falls back to Node's own
 * path (or leaves the figures out) without it.
 */
#include "addon.h"

NAPI_MODULE_INIT() {
  if (!define_gcm(env, exports) || !define_udp(env, exports) || !define_udp_recv(env, exports) ||
      !define_malloc_stats(env, exports)) {
    return NULL;
  }
  return exports;
}
