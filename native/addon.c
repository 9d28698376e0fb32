/*
 * The node's native addon: SRTP's AES-GCM with a context per key (srtp_gcm.c) and datagrams sent
 * on the node's UDP sockets without Node's per-send objects (udp_send.c). Both are optional: the
 * JavaScript side checks for each function and falls back to Node's own path without it.
 */
#include "addon.h"

NAPI_MODULE_INIT() {
  if (!define_gcm(env, exports) || !define_udp(env, exports)) return NULL;
  return exports;
}
