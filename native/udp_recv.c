/*
 * Datagrams read from one of the node's UDP sockets (a Node dgram socket: libuv owns it) without
 * Node's receive path, which per datagram mallocs 64 KiB, shrinks it to the datagram, wraps it in
 * an ArrayBuffer of its own (swept by the next young collection) and formats the sender's address
 * into a new string. Here the caller's JavaScript reads many datagrams into one shared Buffer
 * (a slab), and the sender's address is formatted only when it changes.
 *
 * The socket's descriptor is duplicated and watched with a uv_poll on the same loop (libuv allows
 * one watcher per descriptor, and the dgram handle keeps its own for sends); the caller then stops
 * Node's reading (the handle's recvStop). The duplicate is closed when the watch is stopped, or
 * when the environment (a worker thread) is torn down.
 *
 *   recvStart(fd, onReadable[, stamped]) -> a watch; onReadable(status) is called (through
 *                                node's callback scope, so promises and nextTicks run after it)
 *                                each time the socket has datagrams to read, with status 0; a
 *                                negative status is libuv's error, after which the watch reports
 *                                nothing more. stamped: the kernel notes when each datagram
 *                                arrived (SO_TIMESTAMPNS), for recvBatch's ages
 *   recvBatch(watch, slab, offset, out[, ages]) -> 0, or -errno when the socket cannot be read. Reads
 *                                datagrams into slab from offset, each only while at least
 *                                RECV_ROOM bytes are left (so none is cut short), until the socket
 *                                is empty, out is full, or a datagram comes from another sender
 *                                than the one before (it ends the batch). out (Int32Array):
 *                                [count, flags, length...]; flags: RECV_NEW_SENDER (the last
 *                                datagram's sender differs from the one before), RECV_EMPTY (the
 *                                socket had no more). ages (Float64Array, as long as out's room
 *                                for lengths), on a stamped watch: per datagram, how long ago the
 *                                kernel received it, in ms, when the call returns; -1 when the
 *                                kernel gave no time (a datagram queued before the watch began)
 *   recvPeer(watch)            -> [address, port, family] of the last datagram's sender
 *   recvRef(watch, on)         -> whether the watch keeps the event loop alive, as the socket's
 *                                handle did while Node read it (libuv counts a UDP handle that
 *                                neither reads nor sends as inactive)
 *   recvStop(watch)            -> stops watching and closes the duplicate (idempotent)
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "addon.h"

/* Room a read needs: more than the largest UDP payload over IPv4 or IPv6 (65 507, 65 527). */
#define RECV_ROOM 65536
#define RECV_NEW_SENDER 1
#define RECV_EMPTY 2

typedef struct watch {
  uv_poll_t poll;
  napi_env env;
  int fd;
  /* the kernel stamps each datagram's arrival (SO_TIMESTAMPNS) */
  bool stamped;
  bool stopping;
  /* freed once both are true: libuv has closed the poll, and JavaScript has let go of the watch */
  bool closed;
  bool finalized;
  napi_ref callback;
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup;
  struct sockaddr_storage peer;
  socklen_t peer_length;
} watch_t;

static void on_closed(uv_handle_t *handle) {
  watch_t *w = (watch_t *)handle->data;
  close(w->fd);
  w->fd = -1;
  if (w->cleanup != NULL) napi_remove_async_cleanup_hook(w->cleanup);
  w->cleanup = NULL;
  w->closed = true;
  if (w->finalized) free(w);
}

/* Stops the watch; the duplicate and the watch are freed once libuv has closed the poll. */
static void stop_watch(watch_t *w) {
  if (w->stopping) return;
  w->stopping = true;
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->async_context);
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_closed);
}

/* The environment is going away (a worker ending) while the watch is on. */
static void on_cleanup(napi_async_cleanup_hook_handle handle, void *data) {
  watch_t *w = (watch_t *)data;
  w->cleanup = handle;
  stop_watch(w);
}

/* JavaScript let go of the watch; one it never stopped is stopped now. */
static void on_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  watch_t *w = (watch_t *)data;
  w->finalized = true;
  if (w->closed) free(w);
  else stop_watch(w);
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  (void)events;
  watch_t *w = (watch_t *)poll->data;
  if (w->stopping) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, receiver, argument, result;
  if (napi_get_reference_value(env, w->callback, &callback) == napi_ok && callback != NULL &&
      napi_get_global(env, &receiver) == napi_ok &&
      napi_create_int32(env, status, &argument) == napi_ok) {
    /* An error thrown by the callback goes where Node sends uncaught exceptions. */
    if (napi_make_callback(env, w->async_context, receiver, callback, 1, &argument, &result) ==
        napi_pending_exception) {
      napi_value error;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

static bool watch_arg(napi_env env, napi_value value, watch_t **w) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external) return false;
  return napi_get_value_external(env, value, (void **)w) == napi_ok && *w != NULL;
}

static napi_value recv_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  napi_valuetype type = napi_undefined;
  bool stamped = false;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_typeof(env, argv[1], &type) != napi_ok || type != napi_function ||
      (argc > 2 && napi_typeof(env, argv[2], &type) == napi_ok && type != napi_undefined &&
       napi_get_value_bool(env, argv[2], &stamped) != napi_ok)) {
    return throw_error(env, "recvStart(fd, onReadable[, stamped]): fd must be a descriptor, "
                            "onReadable a function, stamped a boolean");
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    return throw_error(env, "recvStart: no event loop");
  }
  watch_t *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_error(env, "recvStart: out of memory");
  w->env = env;
  w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (w->fd < 0) {
    free(w);
    return throw_error(env, "recvStart: could not duplicate the descriptor");
  }
#ifdef SO_TIMESTAMPNS
  if (stamped) {
    /* a socket option: the socket's own descriptor shares it, and Node's reads ignore it */
    int on = 1;
    w->stamped = setsockopt(w->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) == 0;
  }
#endif
  napi_value name;
  napi_create_string_utf8(env, "returncam:udp-recv", NAPI_AUTO_LENGTH, &name);
  if (uv_poll_init_socket(loop, &w->poll, w->fd) != 0) {
    close(w->fd);
    free(w);
    return throw_error(env, "recvStart: libuv could not watch the descriptor");
  }
  w->poll.data = w;
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok ||
      napi_async_init(env, argv[1], name, &w->async_context) != napi_ok) {
    w->stopping = true;
    w->finalized = true;
    if (w->callback != NULL) napi_delete_reference(env, w->callback);
    uv_close((uv_handle_t *)&w->poll, on_closed);
    return throw_error(env, "recvStart: N-API refused");
  }
  if (uv_poll_start(&w->poll, UV_READABLE, on_readable) != 0 ||
      napi_add_async_cleanup_hook(env, on_cleanup, w, &w->cleanup) != napi_ok) {
    w->finalized = true;
    stop_watch(w);
    return throw_error(env, "recvStart: libuv could not start watching the descriptor");
  }
  napi_value result;
  if (napi_create_external(env, w, on_finalize, NULL, &result) != napi_ok) {
    w->finalized = true;
    stop_watch(w);
    return throw_error(env, "recvStart: N-API refused");
  }
  return result;
}

static bool same_sender(const watch_t *w, const struct sockaddr_storage *from, socklen_t length) {
  if (length != w->peer_length || from->ss_family != w->peer.ss_family) return false;
  if (from->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)from;
    const struct sockaddr_in *b = (const struct sockaddr_in *)&w->peer;
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  if (from->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)from;
    const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&w->peer;
    return a->sin6_port == b->sin6_port && a->sin6_scope_id == b->sin6_scope_id &&
           memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
  }
  return memcmp(from, &w->peer, length) == 0;
}

/* The kernel's arrival time of a datagram read with recvmsg, in ms since the epoch; -1 if none. */
static double arrival_ms(struct msghdr *message) {
#ifdef SO_TIMESTAMPNS
  for (struct cmsghdr *c = CMSG_FIRSTHDR(message); c != NULL; c = CMSG_NXTHDR(message, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      struct timespec at;
      memcpy(&at, CMSG_DATA(c), sizeof at);
      return (double)at.tv_sec * 1e3 + (double)at.tv_nsec / 1e6;
    }
  }
#else
  (void)message;
#endif
  return -1;
}

static napi_value recv_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  watch_t *w = NULL;
  uint8_t *slab;
  size_t slab_length;
  uint32_t offset = 0;
  napi_typedarray_type out_type;
  size_t out_length = 0;
  void *out_data = NULL;
  bool is_typedarray = false;
  if (argc < 4 || !watch_arg(env, argv[0], &w) || !buffer_arg(env, argv[1], &slab, &slab_length) ||
      napi_get_value_uint32(env, argv[2], &offset) != napi_ok || offset > slab_length ||
      napi_is_typedarray(env, argv[3], &is_typedarray) != napi_ok || !is_typedarray ||
      napi_get_typedarray_info(env, argv[3], &out_type, &out_length, &out_data, NULL, NULL) !=
          napi_ok ||
      out_type != napi_int32_array || out_length < 3) {
    return throw_error(env,
                       "recvBatch(watch, slab, offset, out[, ages]): watch from recvStart, slab a "
                       "Buffer, offset within it, out an Int32Array of at least 3");
  }
  size_t most = out_length - 2;
  double *ages = NULL;
  napi_valuetype ages_type = napi_undefined;
  if (argc > 4 && napi_typeof(env, argv[4], &ages_type) == napi_ok && ages_type != napi_undefined) {
    napi_typedarray_type type;
    size_t length = 0;
    void *data = NULL;
    if (napi_is_typedarray(env, argv[4], &is_typedarray) != napi_ok || !is_typedarray ||
        napi_get_typedarray_info(env, argv[4], &type, &length, &data, NULL, NULL) != napi_ok ||
        type != napi_float64_array || length < most) {
      return throw_error(env, "recvBatch: ages must be a Float64Array with room for as many "
                              "datagrams as out");
    }
    ages = (double *)data;
  }
  bool stamping = ages != NULL && w->stamped;
  int32_t *out = (int32_t *)out_data;
  int32_t count = 0;
  int32_t error = 0;
  int32_t flags = 0;
  while (!w->stopping && (size_t)count < most && slab_length - offset >= RECV_ROOM) {
    struct sockaddr_storage from;
    struct iovec data = {.iov_base = slab + offset, .iov_len = RECV_ROOM};
    /* aligned for cmsghdr */
    union {
      struct cmsghdr header;
      char room[CMSG_SPACE(sizeof(struct timespec))];
    } control;
    struct msghdr message = {
        .msg_name = &from,
        .msg_namelen = sizeof from,
        .msg_iov = &data,
        .msg_iovlen = 1,
        .msg_control = stamping ? &control : NULL,
        .msg_controllen = stamping ? sizeof control : 0,
    };
    ssize_t n = recvmsg(w->fd, &message, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) flags |= RECV_EMPTY;
      else error = -errno;
      break;
    }
    if (ages != NULL) ages[count] = stamping ? arrival_ms(&message) : -1;
    out[2 + count] = (int32_t)n;
    offset += (uint32_t)n;
    count++;
    if (!same_sender(w, &from, message.msg_namelen)) {
      memcpy(&w->peer, &from, message.msg_namelen);
      w->peer_length = message.msg_namelen;
      flags |= RECV_NEW_SENDER;
      break;
    }
  }
  if (stamping && count > 0) {
    /* ages against one reading of the same clock, taken as the call returns */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double now_ms = (double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6;
    for (int32_t i = 0; i < count; i++) {
      if (ages[i] >= 0) ages[i] = now_ms > ages[i] ? now_ms - ages[i] : 0;
    }
  }
  out[0] = count;
  out[1] = flags;
  napi_value result;
  /* datagrams read before an error are still the caller's: the error waits for the next call */
  napi_create_int32(env, count > 0 ? 0 : error, &result);
  return result;
}

/* The watch that is a function's only argument, or NULL with `usage` thrown. */
static watch_t *only_watch(napi_env env, napi_callback_info info, const char *usage) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  watch_t *w = NULL;
  if (argc < 1 || !watch_arg(env, argv[0], &w)) {
    throw_error(env, usage);
    return NULL;
  }
  return w;
}

static napi_value undefined_value(napi_env env) {
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

static napi_value recv_peer(napi_env env, napi_callback_info info) {
  watch_t *w = only_watch(env, info, "recvPeer(watch): watch from recvStart");
  if (w == NULL) return NULL;
  char name[INET6_ADDRSTRLEN + 1] = "";
  int port = 0;
  const char *family = "";
  if (w->peer.ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)&w->peer;
    uv_ip4_name(a, name, sizeof name);
    port = ntohs(a->sin_port);
    family = "IPv4";
  } else if (w->peer.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&w->peer;
    uv_ip6_name(a, name, sizeof name);
    port = ntohs(a->sin6_port);
    family = "IPv6";
  }
  napi_value result, value;
  napi_create_array_with_length(env, 3, &result);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &value);
  napi_set_element(env, result, 0, value);
  napi_create_int32(env, port, &value);
  napi_set_element(env, result, 1, value);
  napi_create_string_utf8(env, family, NAPI_AUTO_LENGTH, &value);
  napi_set_element(env, result, 2, value);
  return result;
}

static napi_value recv_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  watch_t *w = NULL;
  bool on = true;
  if (argc < 2 || !watch_arg(env, argv[0], &w) || napi_get_value_bool(env, argv[1], &on) != napi_ok) {
    return throw_error(env, "recvRef(watch, on): watch from recvStart, on a boolean");
  }
  if (!w->stopping) {
    if (on) uv_ref((uv_handle_t *)&w->poll);
    else uv_unref((uv_handle_t *)&w->poll);
  }
  return undefined_value(env);
}

static napi_value recv_stop(napi_env env, napi_callback_info info) {
  watch_t *w = only_watch(env, info, "recvStop(watch): watch from recvStart");
  if (w == NULL) return NULL;
  stop_watch(w);
  return undefined_value(env);
}

bool define_udp_recv(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"recvStart", NULL, recv_start, NULL, NULL, NULL, napi_default, NULL},
      {"recvBatch", NULL, recv_batch, NULL, NULL, NULL, napi_default, NULL},
      {"recvPeer", NULL, recv_peer, NULL, NULL, NULL, napi_default, NULL},
      {"recvRef", NULL, recv_ref, NULL, NULL, NULL, napi_default, NULL},
      {"recvStop", NULL, recv_stop, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, 5, methods) == napi_ok;
}
