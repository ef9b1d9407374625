// Test helper: inflates a gzip stream (a pprof profile's bytes) with zlib.
#pragma once

#include <zlib.h>

#include <string>

// Appends the inflated bytes of gz to *out; true if gz is one whole gzip
// stream with nothing after it.
inline bool Gunzip(const std::string& gz, std::string* out) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return false;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  char buf[65536];
  int rc;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    out->append(buf, sizeof(buf) - z.avail_out);
  } while (rc != Z_STREAM_END);
  inflateEnd(&z);
  return rc == Z_STREAM_END && z.avail_in == 0;
}
