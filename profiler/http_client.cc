// One connection of the profile endpoint (http_client.h).
#include "profiler/http_client.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>

#include "base/os.h"
#include "profiler/dumper.h"

namespace assay::profiler::http {
namespace {

constexpr uint64_t kWriteTimeoutMs = 30000;
constexpr uint64_t kDrainMs = 1000;
constexpr int64_t kMaxSeconds = 600;

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

constexpr char kIndex[] =
    "<html><head><title>/debug/pprof/</title></head><body>\n"
    "<p>assay heap profiler: gzipped pprof profiles (go tool pprof URL)</p>\n"
    "<ul>\n"
    "<li><a href=\"/debug/pprof/heap\">heap</a>: sampled live heap (inuse_*), with the "
    "allocations since start as alloc_*</li>\n"
    "<li><a href=\"/debug/pprof/allocs\">allocs</a>: the same, alloc_space by default</li>\n"
    "</ul>\n"
    "<p>?seconds=N: the change over the next N seconds (alloc_*: allocated meanwhile; "
    "inuse_*: change of the live heap)</p>\n"
    "</body></html>\n";

void Respond(Client& c, int status, const char* content_type, const char* extra_headers,
             std::string body, uint64_t now) {
  char head[512];
  snprintf(head, sizeof(head),
           "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
           "X-Content-Type-Options: nosniff\r\n%s\r\n",
           status, Reason(status), content_type, body.size(), extra_headers);
  c.out = head;
  if (!c.head_only) c.out += body;
  c.out_off = 0;
  c.state = State::kWriting;
  c.deadline_ms = now + kWriteTimeoutMs;
}

void RespondText(Client& c, int status, const char* text, uint64_t now) {
  Respond(c, status, "text/plain; charset=utf-8", "", std::string(text) + "\n", now);
}

void Serve(Client& c, uint64_t now) {
  std::string body, error;
  const int rc = dumper::ProfileBytes(c.kind, c.before, &g_closed, &body, &error);
  dumper::FreeSnapshot(c.before);
  c.before = nullptr;
  if (rc != 0) {
    RespondText(c, 500, ("assay: cannot build the profile: " + error).c_str(), now);
    return;
  }
  char disposition[96];
  snprintf(disposition, sizeof(disposition), "Content-Disposition: attachment; filename=\"%s\"\r\n",
           c.filename);
  Respond(c, 200, "application/octet-stream", disposition, std::move(body), now);
}

// Parses what arrived; answers, parks, or waits for more.
void OnRequestBytes(Client& c, uint64_t now) {
  Request r;
  switch (ParseRequest(c.in, c.in_len, &r)) {
    case ParseStatus::kIncomplete:
      return;
    case ParseStatus::kTooLarge:
      return RespondText(c, 431, "request head over 8 KiB", now);
    case ParseStatus::kBadRequest:
      return RespondText(c, 400, "malformed request", now);
    case ParseStatus::kBadVersion:
      return RespondText(c, 505, "HTTP/1.0 or 1.1 only", now);
    case ParseStatus::kOk:
      break;
  }
  c.head_only = r.method == "HEAD";
  if (r.method != "GET" && !c.head_only) {
    return Respond(c, 405, "text/plain; charset=utf-8", "Allow: GET, HEAD\r\n",
                   "GET or HEAD only\n", now);
  }
  if (r.path == "/debug/pprof/" || r.path == "/debug/pprof") {
    return Respond(c, 200, "text/html; charset=utf-8", "", kIndex, now);
  }
  if (r.path == "/debug/pprof/heap") {
    c.kind = "heap";
    c.filename = "heap";
  } else if (r.path == "/debug/pprof/allocs") {
    c.kind = "alloc";
    c.filename = "allocs";
  } else {
    return RespondText(c, 404, "not found: /debug/pprof/heap, /debug/pprof/allocs", now);
  }
  std::string_view v;
  if (QueryParam(r.query, "seconds", &v)) {
    int64_t seconds = 0;
    for (char ch : v) {
      if (ch < '0' || ch > '9' || seconds > kMaxSeconds) {
        seconds = -1;
        break;
      }
      seconds = seconds * 10 + (ch - '0');
    }
    if (seconds < 1 || seconds > kMaxSeconds) {
      return RespondText(c, 400, "seconds: an integer from 1 to 600", now);
    }
    c.before = dumper::TakeSnapshot();
    c.state = State::kParked;
    // From the fine clock after the snapshot, rounded up: `now` is the
    // coarse clock (a tick behind) from before it, and the delta answered
    // at that deadline spanned 2.99 s of a 3 s request. The coarse clock
    // never runs ahead of the fine one, so the answer comes after
    // `seconds` have passed since the snapshot.
    const uint64_t after_ms = (internal::os::NowNs() + 999999) / 1000000;
    c.deadline_ms = after_ms + static_cast<uint64_t>(seconds) * 1000;
    return;
  }
  Serve(c, now);
}

void AfterWrite(Client& c, uint64_t now) {
  shutdown(c.fd, SHUT_WR);
  std::string().swap(c.out);
  c.state = State::kDraining;
  c.deadline_ms = now + kDrainMs;
}

}  // namespace

void Close(Client& c, int slot) {
  __atomic_store_n(&g_client_fds[slot], -1, __ATOMIC_RELEASE);
  close(c.fd);
  dumper::FreeSnapshot(c.before);
  c.before = nullptr;
  c.fd = -1;
  c.state = State::kFree;
  std::string().swap(c.out);
}

void OnEvents(Client& c, int slot, short revents, uint64_t now) {
  char scratch[1024];
  switch (c.state) {
    case State::kReading: {
      const ssize_t n = recv(c.fd, c.in + c.in_len, sizeof(c.in) - c.in_len, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return Close(c, slot);
      if (n < 0) return;
      c.in_len += static_cast<size_t>(n);
      return OnRequestBytes(c, now);
    }
    case State::kParked:
    case State::kDraining: {
      // Extra bytes are dropped; a client that hangs up is let go.
      const ssize_t n = recv(c.fd, scratch, sizeof(scratch), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return Close(c, slot);
      if ((revents & (POLLERR | POLLHUP)) != 0 && n < 0) return Close(c, slot);
      return;
    }
    case State::kWriting: {
      const ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EINTR) return Close(c, slot);
      if (n > 0) c.out_off += static_cast<size_t>(n);
      if (c.out_off == c.out.size()) AfterWrite(c, now);
      return;
    }
    case State::kFree:
      return;
  }
}

void OnDeadline(Client& c, int slot, uint64_t now) {
  switch (c.state) {
    case State::kReading:
      return RespondText(c, 408, "no whole request within 5 s", now);
    case State::kParked:
      return Serve(c, now);
    case State::kWriting:
    case State::kDraining:
      return Close(c, slot);
    case State::kFree:
      return;
  }
}

}  // namespace assay::profiler::http
