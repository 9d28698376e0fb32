{
  "targets": [
    {
      "target_name": "returncam_native",
      "sources": ["native/addon.c", "native/srtp_gcm.c", "native/udp_send.c", "native/udp_recv.c",
                  "native/malloc_stats.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
