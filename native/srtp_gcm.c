/*
 * AES-128-GCM for SRTP (RFC 7714) with a cipher context kept per session key.
 *
 * Node's crypto API takes a GCM IV only when a cipher is created, so sealing or opening an SRTP
 * packet from JavaScript builds a new OpenSSL context (and its key schedule) per packet, and
 * returns the output in new Buffers. Here the key is set once per context and each packet only
 * sets its IV, reading and writing the caller's Buffers. OpenSSL is the one inside Node, so there
 * is nothing to link or download.
 *
 *   context(key)                             -> handle (the contexts are freed with it)
 *   seal(handle, iv, dst, aadLength, plain)  dst = [aad | ciphertext | tag], aad already in dst
 *   open(handle, iv, src, aadLength, dst)    src = [aad | ciphertext | tag];
 *                                            dst = [aad | plaintext] (src.length - 16 bytes);
 *                                            returns false when the tag does not match
 *   liveContexts()                           -> contexts made and not yet freed, in the process
 *
 * A handle's contexts are freed by its finalizer, which Node runs on the event loop after the
 * collection that found the handle unreachable.
 */
#include <limits.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"

#define TAG_LENGTH 16
#define IV_LENGTH 12
#define KEY_LENGTH 16

typedef struct {
  EVP_CIPHER_CTX *seal;
  EVP_CIPHER_CTX *open;
} GcmContext;

/* Across worker threads: each has its own handles, all share the process's count. */
static atomic_long live_contexts = 0;

static void free_context(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  GcmContext *c = data;
  EVP_CIPHER_CTX_free(c->seal);
  EVP_CIPHER_CTX_free(c->open);
  free(c);
  atomic_fetch_sub(&live_contexts, 1);
}

static bool context_arg(napi_env env, napi_value value, GcmContext **context) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external) return false;
  return napi_get_value_external(env, value, (void **)context) == napi_ok && *context != NULL;
}

static napi_value make_context(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *key;
  size_t key_length;
  if (argc < 1 || !buffer_arg(env, argv[0], &key, &key_length) || key_length != KEY_LENGTH) {
    return throw_error(env, "context(key): key must be a 16-byte Buffer");
  }
  GcmContext *c = calloc(1, sizeof(GcmContext));
  if (c == NULL) return throw_error(env, "context(key): out of memory");
  atomic_fetch_add(&live_contexts, 1);
  c->seal = EVP_CIPHER_CTX_new();
  c->open = EVP_CIPHER_CTX_new();
  if (c->seal == NULL || c->open == NULL ||
      EVP_EncryptInit_ex(c->seal, EVP_aes_128_gcm(), NULL, key, NULL) != 1 ||
      EVP_DecryptInit_ex(c->open, EVP_aes_128_gcm(), NULL, key, NULL) != 1) {
    free_context(env, c, NULL);
    return throw_error(env, "context(key): OpenSSL could not set up AES-128-GCM");
  }
  napi_value handle;
  if (napi_create_external(env, c, free_context, NULL, &handle) != napi_ok) {
    free_context(env, c, NULL);
    return throw_error(env, "context(key): could not create the handle");
  }
  return handle;
}

static bool length_arg(napi_env env, napi_value value, size_t *out) {
  uint32_t n;
  if (napi_get_value_uint32(env, value, &n) != napi_ok) return false;
  *out = n;
  return true;
}

static napi_value seal(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  GcmContext *c;
  uint8_t *iv, *dst, *plain;
  size_t iv_length, dst_length, aad_length, plain_length;
  if (argc < 5 || !context_arg(env, argv[0], &c) || !buffer_arg(env, argv[1], &iv, &iv_length) ||
      iv_length != IV_LENGTH || !buffer_arg(env, argv[2], &dst, &dst_length) ||
      !length_arg(env, argv[3], &aad_length) ||
      !buffer_arg(env, argv[4], &plain, &plain_length) || dst_length > INT_MAX ||
      dst_length != aad_length + plain_length + TAG_LENGTH) {
    return throw_error(env,
                       "seal(context, iv, dst, aadLength, plain): dst must hold aadLength + "
                       "plain.length + 16 bytes, iv 12");
  }
  int n = 0;
  EVP_CIPHER_CTX *x = c->seal;
  if (EVP_EncryptInit_ex(x, NULL, NULL, NULL, iv) != 1 ||
      (aad_length > 0 && EVP_EncryptUpdate(x, NULL, &n, dst, (int)aad_length) != 1) ||
      (plain_length > 0 &&
       EVP_EncryptUpdate(x, dst + aad_length, &n, plain, (int)plain_length) != 1) ||
      EVP_EncryptFinal_ex(x, dst + aad_length + plain_length, &n) != 1 ||
      EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, TAG_LENGTH, dst + aad_length + plain_length) !=
          1) {
    return throw_error(env, "seal: OpenSSL failed to encrypt");
  }
  return NULL;
}

static napi_value open_packet(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  GcmContext *c;
  uint8_t *iv, *src, *dst;
  size_t iv_length, src_length, aad_length, dst_length;
  if (argc < 5 || !context_arg(env, argv[0], &c) || !buffer_arg(env, argv[1], &iv, &iv_length) ||
      iv_length != IV_LENGTH || !buffer_arg(env, argv[2], &src, &src_length) ||
      !length_arg(env, argv[3], &aad_length) || !buffer_arg(env, argv[4], &dst, &dst_length) ||
      src_length > INT_MAX || src_length < aad_length + TAG_LENGTH ||
      dst_length != src_length - TAG_LENGTH) {
    return throw_error(env,
                       "open(context, iv, src, aadLength, dst): src must hold aadLength + 16 "
                       "bytes at least, dst src.length - 16, iv 12");
  }
  size_t cipher_length = src_length - TAG_LENGTH - aad_length;
  int n = 0;
  EVP_CIPHER_CTX *x = c->open;
  bool ok = EVP_DecryptInit_ex(x, NULL, NULL, NULL, iv) == 1 &&
            EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, TAG_LENGTH,
                                src + src_length - TAG_LENGTH) == 1 &&
            (aad_length == 0 || EVP_DecryptUpdate(x, NULL, &n, src, (int)aad_length) == 1) &&
            (cipher_length == 0 ||
             EVP_DecryptUpdate(x, dst + aad_length, &n, src + aad_length, (int)cipher_length) ==
                 1) &&
            EVP_DecryptFinal_ex(x, dst + aad_length + cipher_length, &n) == 1;
  if (ok) {
    if (dst != src) memmove(dst, src, aad_length);
  } else {
    memset(dst, 0, dst_length); /* nothing unauthenticated is left behind */
  }
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value live_context_count(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_int64(env, (int64_t)atomic_load(&live_contexts), &result);
  return result;
}

bool define_gcm(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"context", NULL, make_context, NULL, NULL, NULL, napi_default, NULL},
      {"seal", NULL, seal, NULL, NULL, NULL, napi_default, NULL},
      {"open", NULL, open_packet, NULL, NULL, NULL, napi_default, NULL},
      {"liveContexts", NULL, live_context_count, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, 4, methods) == napi_ok;
}
