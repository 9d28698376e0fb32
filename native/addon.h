/* What the addon's parts share: argument helpers and each part's registration. */
#ifndef RETURNCAM_ADDON_H
#define RETURNCAM_ADDON_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, "ERR_RETURNCAM_NATIVE", message);
  return NULL;
}

/* A Buffer (or a view into one: the pointer and length are the view's). */
static inline bool buffer_arg(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer) return false;
  return napi_get_buffer_info(env, value, (void **)data, length) == napi_ok;
}

/* Each part adds its functions to the addon's exports; false when N-API refused. */
bool define_gcm(napi_env env, napi_value exports);
bool define_udp(napi_env env, napi_value exports);
bool define_udp_recv(napi_env env, napi_value exports);
bool define_malloc_stats(napi_env env, napi_value exports);

#endif
