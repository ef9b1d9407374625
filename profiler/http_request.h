// The profile endpoint's HTTP/1.x request parser and listen-address parser
// (http_server.cc serves with them): pure functions of their input, with no
// allocation and no process state, so they can be unit-tested and fuzzed alone.
#pragma once

#include <netinet/in.h>
#include <stddef.h>
#include <sys/un.h>

#include <string_view>

namespace assay::profiler::http {

// The request line and header block together (up to and including the blank
// line that ends them) may take at most this many bytes.
constexpr size_t kMaxRequestHead = 8192;

enum class ParseStatus {
  kOk,          // a whole, valid request head
  kIncomplete,  // valid so far; more bytes needed
  kBadRequest,  // malformed: answer 400
  kTooLarge,    // no end of head within kMaxRequestHead bytes: answer 431
  kBadVersion,  // HTTP/x.y other than 1.0 and 1.1: answer 505
};

struct Request {
  std::string_view method;  // e.g. "GET" (case-sensitive, as RFC 9110 says)
  std::string_view path;    // the target before '?', starts with '/', not decoded
  std::string_view query;   // the target after '?' (empty if none), not decoded
  int minor_version;        // 0 or 1
  size_t head_length;       // bytes of the head, blank line included
};

// Parses the head of the request at the start of data[0, len), the bytes
// received so far. Line ends are CRLF or a bare LF. The request line is
// METHOD SP TARGET SP HTTP/1.x with a token method and an origin-form target
// ('/' then visible ASCII, no '#'); header lines are `name: value` with a
// token name and no control characters but HT in the value; folded header
// lines are refused. Header values are not interpreted (a body is never read:
// the endpoint closes the connection after its answer). On kOk the views
// point into data.
ParseStatus ParseRequest(const char* data, size_t len, Request* out);

// The value of the first `name=value` pair of a query (pairs split by '&';
// a pair without '=' has an empty value); false if there is none.
bool QueryParam(std::string_view query, std::string_view name, std::string_view* value);

// Where MALLOC_PROF's http=ADDR listens: `IPv4:PORT`, `[IPv6]:PORT`,
// `localhost:PORT` (127.0.0.1), or `unix:/absolute/path` (shorter than
// sun_path). PORT is 1..65535. No name is resolved.
struct ListenAddress {
  int family;  // AF_INET, AF_INET6 or AF_UNIX
  sockaddr_in in4;
  sockaddr_in6 in6;
  sockaddr_un un;
  bool loopback;  // 127.0.0.0/8, ::1, ::ffff:127.x.y.z, or a unix socket
};
// True and *out filled if text is a valid address.
bool ParseListenAddress(const char* text, ListenAddress* out);

}  // namespace assay::profiler::http
