// fuzz_http_request: the profile endpoint's request and listen-address parsers
// (profiler/http_request.cc) on arbitrary bytes, under ASan and UBSan; the
// parser object is linked alone (pure functions, no allocation).
// Input: one mode byte, then the bytes. Mode even: a request head received
// whole, and again split at every length the mode names (as bytes arrive);
// odd: a listen address.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <string>

#include "profiler/http_request.h"

namespace http = assay::profiler::http;

namespace {

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "fuzz_http_request: check failed: %s at %s:%d\n", #cond, __FILE__, \
              __LINE__);                                                                 \
      abort();                                                                           \
    }                                                                                    \
  } while (0)

bool Inside(std::string_view v, const char* data, size_t len) {
  return v.empty() || (v.data() >= data && v.data() + v.size() <= data + len);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = bytes[0];
  // A heap copy of exactly the bytes: ASan catches a read past them.
  const size_t len = size - 1;
  char* data = static_cast<char*>(malloc(len == 0 ? 1 : len));
  memcpy(data, bytes + 1, len);
  if (mode % 2 == 0) {
    http::Request r;
    const http::ParseStatus s = http::ParseRequest(data, len, &r);
    if (s == http::ParseStatus::kOk) {
      FUZZ_CHECK(r.head_length <= len && r.head_length <= http::kMaxRequestHead);
      FUZZ_CHECK(Inside(r.method, data, len) && Inside(r.path, data, len) &&
                 Inside(r.query, data, len));
      FUZZ_CHECK(!r.path.empty() && r.path[0] == '/');
      FUZZ_CHECK(r.minor_version == 0 || r.minor_version == 1);
      std::string_view v;
      http::QueryParam(r.query, "seconds", &v);
      FUZZ_CHECK(Inside(v, data, len));
      // The head alone parses to the same request.
      http::Request again;
      FUZZ_CHECK(http::ParseRequest(data, r.head_length, &again) == http::ParseStatus::kOk);
      FUZZ_CHECK(again.head_length == r.head_length && again.path == r.path);
    }
    // A prefix of a request that is whole or still incomplete is incomplete
    // (or already too large): more bytes can only complete it.
    const size_t cut = len * (mode >> 1) / 128;
    if (cut < len && (s == http::ParseStatus::kIncomplete)) {
      http::Request part;
      const http::ParseStatus p = http::ParseRequest(data, cut, &part);
      FUZZ_CHECK(p == http::ParseStatus::kIncomplete || p == http::ParseStatus::kTooLarge);
    }
  } else {
    std::string text(data, len);  // NUL-terminated copy
    http::ListenAddress a;
    if (http::ParseListenAddress(text.c_str(), &a)) {
      FUZZ_CHECK(a.family == AF_INET || a.family == AF_INET6 || a.family == AF_UNIX);
      if (a.family == AF_UNIX) {
        FUZZ_CHECK(memchr(a.un.sun_path, '\0', sizeof(a.un.sun_path)) != nullptr);
        FUZZ_CHECK(a.loopback);
      }
    }
  }
  free(data);
  return 0;
}
