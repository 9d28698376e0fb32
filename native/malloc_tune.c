/*
 * The C allocator, process-wide: its large-allocation threshold, and what it holds.
 *
 * glibc's malloc serves a request at or above its mmap threshold with a mapping of its own, given
 * back to the kernel when freed; below it, from its arenas, which keep what is freed for later
 * requests. The threshold starts at 128 KiB and rises to the size of each such mapping freed (up
 * to 32 MiB), and the trim threshold (the free room an arena keeps at its top) with it. So once
 * the recorder freed its 1 MiB read windows, the node's 256 KiB receive slabs and 128 KiB
 * retransmit rings came from the arenas and left holes there. Setting the threshold fixes both.
 *
 *   setMmapThreshold(bytes) -> true when set, false where the C library is not glibc
 *   mallocStats()           -> { inUseBytes, freeBytes, mmappedBytes } (glibc 2.33 or later:
 *                              mallinfo2), or undefined
 */
#include <stdlib.h> /* defines __GLIBC__ under glibc */

#ifdef __GLIBC__
#include <malloc.h>
#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33)
#define HAVE_MALLINFO2 1
#endif
#endif

#include "addon.h"

static napi_value set_mmap_threshold(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t bytes = 0;
  if (argc < 1 || napi_get_value_uint32(env, argv[0], &bytes) != napi_ok || bytes < 4096 ||
      bytes > 32u * 1024 * 1024) {
    return throw_error(env, "setMmapThreshold(bytes): bytes must be 4096 to 33554432");
  }
  bool set = false;
#ifdef __GLIBC__
  set = mallopt(M_MMAP_THRESHOLD, (int)bytes) == 1;
#endif
  napi_value result;
  napi_get_boolean(env, set, &result);
  return result;
}

#ifdef HAVE_MALLINFO2
static bool set_number(napi_env env, napi_value object, const char *name, size_t value) {
  napi_value number;
  return napi_create_double(env, (double)value, &number) == napi_ok &&
         napi_set_named_property(env, object, name, number) == napi_ok;
}
#endif

static napi_value allocator_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_undefined(env, &result);
#ifdef HAVE_MALLINFO2
  struct mallinfo2 m = mallinfo2();
  napi_value object;
  if (napi_create_object(env, &object) != napi_ok ||
      /* allocated from the arenas, and in mappings of their own */
      !set_number(env, object, "inUseBytes", m.uordblks + m.hblkhd) ||
      /* freed, kept by the arenas for later requests (resident once touched) */
      !set_number(env, object, "freeBytes", m.fordblks) ||
      !set_number(env, object, "mmappedBytes", m.hblkhd)) {
    return throw_error(env, "mallocStats: could not build the result");
  }
  result = object;
#endif
  return result;
}

bool define_malloc_tune(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"setMmapThreshold", NULL, set_mmap_threshold, NULL, NULL, NULL, napi_default, NULL},
      {"mallocStats", NULL, allocator_stats, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, 2, methods) == napi_ok;
}
