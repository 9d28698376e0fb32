/*
 * A datagram sent on one of the node's UDP sockets (a Node dgram socket: libuv owns it) with one
 * sendto(2), instead of Node's dgram path, which per datagram normalizes its arguments, makes a
 * request object through a C++ constructor, and parses the address string again. The socket's
 * descriptor is the dgram handle's `fd`; it is non-blocking, so a full send buffer answers EAGAIN
 * here and the caller hands that datagram to Node, which queues it in libuv.
 *
 *   sockaddr(ip, port)        -> Buffer holding a sockaddr_in or sockaddr_in6 for an IPv4 or IPv6
 *                                literal (no zone index), or undefined for anything else
 *   sendTo(fd, data, address) -> bytes sent, or -errno (EINTR is retried)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "addon.h"

static napi_value make_sockaddr(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char ip[INET6_ADDRSTRLEN + 1];
  size_t ip_length = 0;
  uint32_t port = 0;
  if (argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], ip, sizeof ip, &ip_length) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &port) != napi_ok || port > 65535) {
    return throw_error(env, "sockaddr(ip, port): ip must be a string, port 0-65535");
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  if (ip_length >= sizeof ip - 1) return undefined; /* longer than any literal: not one */
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
  const void *address;
  size_t length;
  memset(&v4, 0, sizeof v4);
  memset(&v6, 0, sizeof v6);
  if (inet_pton(AF_INET, ip, &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons((uint16_t)port);
    address = &v4;
    length = sizeof v4;
  } else if (inet_pton(AF_INET6, ip, &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons((uint16_t)port);
    address = &v6;
    length = sizeof v6;
  } else {
    return undefined;
  }
  napi_value result;
  void *copy;
  if (napi_create_buffer_copy(env, length, address, &copy, &result) != napi_ok) {
    return throw_error(env, "sockaddr: could not create the Buffer");
  }
  return result;
}

static napi_value send_to(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  uint8_t *data, *address;
  size_t data_length, address_length;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      !buffer_arg(env, argv[1], &data, &data_length) ||
      !buffer_arg(env, argv[2], &address, &address_length) ||
      (address_length != sizeof(struct sockaddr_in) &&
       address_length != sizeof(struct sockaddr_in6))) {
    return throw_error(env,
                       "sendTo(fd, data, address): fd must be a descriptor, data a Buffer, address "
                       "a Buffer from sockaddr()");
  }
  /* the address Buffer may sit anywhere in memory: copy it to aligned storage */
  struct sockaddr_storage to;
  memcpy(&to, address, address_length);
  ssize_t sent;
  do {
    sent = sendto(fd, data, data_length, 0, (const struct sockaddr *)&to,
                  (socklen_t)address_length);
  } while (sent < 0 && errno == EINTR);
  napi_value result;
  napi_create_int64(env, sent < 0 ? -(int64_t)errno : (int64_t)sent, &result);
  return result;
}

bool define_udp(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"sockaddr", NULL, make_sockaddr, NULL, NULL, NULL, napi_default, NULL},
      {"sendTo", NULL, send_to, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, 2, methods) == napi_ok;
}
