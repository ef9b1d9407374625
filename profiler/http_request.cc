// The request and listen-address parsers (http_request.h). Everything here
// reads only its arguments.
#include "profiler/http_request.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

namespace assay::profiler::http {
namespace {

// RFC 9110 tchar.
bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool IsVisible(unsigned char c) { return c > 0x20 && c < 0x7f; }

// The next line of data[pos, end): its end (excluding CR LF or LF) in *line_end
// and the start of the next line in *next; false if no LF yet.
bool NextLine(const char* data, size_t pos, size_t end, size_t* line_end, size_t* next) {
  const void* lf = memchr(data + pos, '\n', end - pos);
  if (lf == nullptr) return false;
  const size_t at = static_cast<size_t>(static_cast<const char*>(lf) - data);
  *next = at + 1;
  *line_end = at > pos && data[at - 1] == '\r' ? at - 1 : at;
  return true;
}

// Checks the request line data[0, n) and fills method, path, query, version.
ParseStatus ParseRequestLine(const char* data, size_t n, Request* out) {
  size_t i = 0;
  while (i < n && IsTokenChar(static_cast<unsigned char>(data[i]))) ++i;
  if (i == 0 || i > 32 || i >= n || data[i] != ' ') return ParseStatus::kBadRequest;
  const std::string_view method(data, i);
  const size_t target = ++i;
  if (target >= n || data[target] != '/') return ParseStatus::kBadRequest;
  while (i < n && data[i] != ' ') {
    const unsigned char c = static_cast<unsigned char>(data[i]);
    if (!IsVisible(c) || c == '#') return ParseStatus::kBadRequest;
    ++i;
  }
  if (i >= n) return ParseStatus::kBadRequest;  // HTTP/0.9 (no version): refused
  const std::string_view whole(data + target, i - target);
  const std::string_view version(data + i + 1, n - i - 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return ParseStatus::kBadRequest;
  }
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) {
    return ParseStatus::kBadVersion;
  }
  const size_t q = whole.find('?');
  out->method = method;
  out->path = whole.substr(0, q);
  out->query = q == std::string_view::npos ? std::string_view() : whole.substr(q + 1);
  out->minor_version = version[7] - '0';
  return ParseStatus::kOk;
}

bool ValidHeaderLine(const char* line, size_t n) {
  size_t i = 0;
  while (i < n && IsTokenChar(static_cast<unsigned char>(line[i]))) ++i;
  if (i == 0 || i >= n || line[i] != ':') return false;  // also refuses folded lines
  for (++i; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(line[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

bool ParsePort(const char* s, uint16_t* port) {
  if (*s == '\0') return false;
  unsigned long v = 0;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9') return false;
    v = v * 10 + static_cast<unsigned long>(*s - '0');
    if (v > 65535) return false;
  }
  if (v == 0) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

}  // namespace

ParseStatus ParseRequest(const char* data, size_t len, Request* out) {
  // Only the first kMaxRequestHead bytes can hold a head we accept.
  const size_t end = len < kMaxRequestHead ? len : kMaxRequestHead;
  size_t line_end, next;
  if (!NextLine(data, 0, end, &line_end, &next)) {
    return len >= kMaxRequestHead ? ParseStatus::kTooLarge : ParseStatus::kIncomplete;
  }
  Request req{};
  const ParseStatus line = ParseRequestLine(data, line_end, &req);
  if (line != ParseStatus::kOk) return line;
  for (size_t pos = next;;) {
    if (!NextLine(data, pos, end, &line_end, &next)) {
      return len >= kMaxRequestHead ? ParseStatus::kTooLarge : ParseStatus::kIncomplete;
    }
    if (line_end == pos) {  // the blank line: the head is whole
      req.head_length = next;
      *out = req;
      return ParseStatus::kOk;
    }
    if (!ValidHeaderLine(data + pos, line_end - pos)) return ParseStatus::kBadRequest;
    pos = next;
  }
}

bool QueryParam(std::string_view query, std::string_view name, std::string_view* value) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      *value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      return true;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

bool ParseListenAddress(const char* text, ListenAddress* out) {
  *out = ListenAddress{};
  if (text == nullptr) return false;
  const size_t n = strlen(text);
  if (n > 5 && strncmp(text, "unix:", 5) == 0) {
    const char* path = text + 5;
    if (path[0] != '/' || n - 5 >= sizeof(out->un.sun_path)) return false;
    out->family = AF_UNIX;
    out->un.sun_family = AF_UNIX;
    memcpy(out->un.sun_path, path, n - 5 + 1);
    out->loopback = true;
    return true;
  }
  char host[64];
  const char* port;
  if (text[0] == '[') {
    const char* close = strchr(text, ']');
    if (close == nullptr || close[1] != ':' ||
        static_cast<size_t>(close - text - 1) >= sizeof(host))
      return false;
    memcpy(host, text + 1, static_cast<size_t>(close - text - 1));
    host[close - text - 1] = '\0';
    port = close + 2;
    out->family = AF_INET6;
  } else {
    const char* colon = strrchr(text, ':');
    if (colon == nullptr || static_cast<size_t>(colon - text) >= sizeof(host)) return false;
    memcpy(host, text, static_cast<size_t>(colon - text));
    host[colon - text] = '\0';
    port = colon + 1;
    out->family = AF_INET;
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  }
  uint16_t p;
  if (!ParsePort(port, &p)) return false;
  if (out->family == AF_INET) {
    out->in4.sin_family = AF_INET;
    out->in4.sin_port = htons(p);
    if (inet_pton(AF_INET, host, &out->in4.sin_addr) != 1) return false;
    out->loopback = (ntohl(out->in4.sin_addr.s_addr) >> 24) == 127;
  } else {
    out->in6.sin6_family = AF_INET6;
    out->in6.sin6_port = htons(p);
    if (inet_pton(AF_INET6, host, &out->in6.sin6_addr) != 1) return false;
    const in6_addr& a = out->in6.sin6_addr;
    out->loopback = IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
  }
  return true;
}

}  // namespace assay::profiler::http
