{
  "targets": [
    {
      "target_name": "returncam_native",
      "sources": ["native/srtp_gcm.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
