/*
 * What the C allocator holds, process-wide (glibc 2.33 or later: mallinfo2): what is allocated
 * and not freed, and what was freed and is kept in its arenas for later requests. The node's RSS
 * outside V8's heap and ArrayBuffers is mostly one or the other, and only the second grows when
 * memory fragments.
 *
 *   mallocStats() -> { inUseBytes, freeBytes, mmappedBytes }, or undefined elsewhere
 */
#include <stdlib.h> /* defines __GLIBC__ under glibc */

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define HAVE_MALLINFO2 1
#endif

#include "addon.h"

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

bool define_malloc_stats(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"mallocStats", NULL, allocator_stats, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, 1, methods) == napi_ok;
}
