// The profile endpoint's thread and its poll() loop (http_server.h): the
// listener, accepting, the exit and fork handlers. Each connection is an
// http_client.h state machine; the requests are parsed by http_request.cc,
// the profiles built by the dumper.
// The socket calls are this file's own (the OS seam, base/os.h, holds the
// allocator's memory, clock and process calls, which it uses).
#include "profiler/http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <string_view>

#include "base/os.h"
#include "profiler/dumper.h"
#include "profiler/http_client.h"
#include "profiler/http_request.h"
#include "profiler/profiler.h"

namespace assay::profiler::http {

int g_client_fds[kMaxClients] = {-1, -1, -1, -1};
uint32_t g_closed = 0;

namespace {

// Shared with the exit and fork handlers.
int g_listen_fd = -1;
int g_wake_fd = -1;                                    // eventfd: wakes the loop to stop
uint32_t g_stopped = 0;                                // atomic, futex: the loop has ended
int g_owner = 0;                                       // the process that serves
char g_address[128];                                   // http=ADDR, for messages
char g_unix_path[sizeof(sockaddr_un::sun_path)] = "";  // our socket file, if any
dev_t g_unix_dev = 0;
ino_t g_unix_ino = 0;

void Say(const char* what) {
  char line[400];
  snprintf(line, sizeof(line),
           "assay: MALLOC_PROF http=%s: %s; profiling goes on without the "
           "endpoint\n",
           g_address, what);
  internal::os::WriteStderr(line);
}

// Answers a connection refused for lack of room; best effort, never blocks.
#define ASSAY_BUSY_BODY "assay: too many concurrent clients\n"
constexpr char kBusy[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 35\r\n"
    "Connection: close\r\nRetry-After: 1\r\n\r\n" ASSAY_BUSY_BODY;
static_assert(sizeof(ASSAY_BUSY_BODY) - 1 == 35, "Content-Length above");
#undef ASSAY_BUSY_BODY

// Accepts every pending connection; one beyond kMaxClients gets 503 and is
// closed. False if accept failed for lack of descriptors (pause listening).
bool AcceptAll(Client* clients, uint64_t now) {
  for (;;) {
    const int fd = accept4(g_listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM;
    }
    int slot = 0;
    while (slot < kMaxClients && clients[slot].state != State::kFree) ++slot;
    if (slot == kMaxClients) {
      (void)!send(fd, kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      continue;
    }
    Client& c = clients[slot];
    c.fd = fd;
    __atomic_store_n(&g_client_fds[slot], fd, __ATOMIC_RELEASE);
    c.state = State::kReading;
    c.deadline_ms = now + kRequestTimeoutMs;
    c.in_len = 0;
    c.head_only = false;
  }
}

void Loop() {
  Client clients[kMaxClients];
  uint64_t listen_paused_until = 0;
  while (__atomic_load_n(&g_closed, __ATOMIC_ACQUIRE) == 0) {
    pollfd fds[2 + kMaxClients];
    int slot_of[2 + kMaxClients];
    nfds_t n = 0;
    uint64_t now = internal::os::NowMs();
    fds[n++] = {g_wake_fd, POLLIN, 0};
    const bool listening = now >= listen_paused_until;
    if (listening) fds[n++] = {g_listen_fd, POLLIN, 0};
    int64_t timeout = listening ? -1 : static_cast<int64_t>(listen_paused_until - now);
    for (int i = 0; i < kMaxClients; ++i) {
      const Client& c = clients[i];
      if (c.state == State::kFree) continue;
      const short events = c.state == State::kWriting ? POLLOUT : POLLIN;
      slot_of[n] = i;
      fds[n++] = {c.fd, events, 0};
      const int64_t left = c.deadline_ms > now ? static_cast<int64_t>(c.deadline_ms - now) : 0;
      if (timeout < 0 || left < timeout) timeout = left;
    }
    if (poll(fds, n,
             timeout > 0 ? static_cast<int>(timeout > 60000 ? 60000 : timeout)
                         : static_cast<int>(timeout)) < 0 &&
        errno != EINTR) {
      continue;
    }
    now = internal::os::NowMs();
    if (fds[0].revents != 0) {
      uint64_t count;
      (void)!read(g_wake_fd, &count, sizeof(count));
      continue;  // the loop's condition decides
    }
    for (nfds_t k = listening ? 2 : 1; k < n; ++k) {
      if (fds[k].revents != 0) OnEvents(clients[slot_of[k]], slot_of[k], fds[k].revents, now);
    }
    now = internal::os::NowMs();
    for (int i = 0; i < kMaxClients; ++i) {
      if (clients[i].state != State::kFree && now >= clients[i].deadline_ms) {
        OnDeadline(clients[i], i, now);
      }
    }
    if (listening && fds[1].revents != 0 && !AcceptAll(clients, now)) {
      listen_paused_until = now + 100;  // out of descriptors: do not spin on the listener
    }
  }
  for (int i = 0; i < kMaxClients; ++i) {
    if (clients[i].state != State::kFree) Close(clients[i], i);
  }
}

void* ThreadMain(void*) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  {
    ScopedSuspend suspend;  // nothing this thread allocates is ever sampled
    Loop();
  }
  __atomic_store_n(&g_stopped, 1, __ATOMIC_RELEASE);
  internal::os::FutexWake(&g_stopped, 1);
  return nullptr;
}

// Removes our socket file if it is still the one we bound.
void UnlinkOwnSocket() {
  struct stat st;
  if (g_unix_path[0] != '\0' && lstat(g_unix_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
      st.st_dev == g_unix_dev && st.st_ino == g_unix_ino) {
    unlink(g_unix_path);
  }
}

// At exit: no build of ours starts after the dumper is quiesced (the exit
// dumps and static destructors follow); the loop closes its connections.
void StopAtExit() {
  if (internal::os::ProcessId() != g_owner) return;  // a fork child: not ours
  __atomic_store_n(&g_closed, 1, __ATOMIC_RELEASE);
  const uint64_t one = 1;
  (void)!write(g_wake_fd, &one, sizeof(one));
  dumper::Quiesce();
  const uint64_t until = internal::os::NowMs() + 500;
  while (__atomic_load_n(&g_stopped, __ATOMIC_ACQUIRE) == 0) {
    const uint64_t now = internal::os::NowMs();
    if (now >= until) break;
    internal::os::FutexWait(&g_stopped, 0, static_cast<int64_t>(until - now));
  }
  UnlinkOwnSocket();
}

// The endpoint stays with the parent: the child has no loop thread, and
// closes the sockets it inherited (a client must not wait on the child).
void ChildAfterFork() {
  for (int& fd : g_client_fds) {
    const int old = __atomic_exchange_n(&fd, -1, __ATOMIC_ACQ_REL);
    if (old >= 0) close(old);
  }
  if (g_listen_fd >= 0) close(g_listen_fd);
  if (g_wake_fd >= 0) close(g_wake_fd);
  g_listen_fd = g_wake_fd = -1;
}

// For a unix socket: a stale socket file (nobody listening) is removed;
// anything else at the path is left alone. False (after saying why) if the
// path cannot be used.
bool PrepareUnixPath(const sockaddr_un& addr) {
  struct stat st;
  if (lstat(addr.sun_path, &st) != 0) {
    if (errno == ENOENT) return true;
    char what[200];
    snprintf(what, sizeof(what), "cannot use the path (%s)", strerror(errno));
    Say(what);
    return false;
  }
  if (!S_ISSOCK(st.st_mode)) {
    Say("the path exists and is not a socket; it is not replaced");
    return false;
  }
  const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) return false;
  const int rc = connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int e = errno;
  close(probe);
  if (rc != 0 && e == ECONNREFUSED) {
    unlink(addr.sun_path);  // stale: its server is gone
    return true;
  }
  Say("address in use");
  return false;
}

}  // namespace

void StartServer(const char* address, bool allow_remote) {
  snprintf(g_address, sizeof(g_address), "%s", address);
  ListenAddress a;
  if (!ParseListenAddress(address, &a)) {
    Say("not an address (IP:PORT, [IPv6]:PORT or unix:/absolute/path)");
    return;
  }
  if (!a.loopback && !allow_remote) {
    Say("not a loopback address (add http_remote=1 to serve other hosts)");
    return;
  }
  if (a.family == AF_UNIX && !PrepareUnixPath(a.un)) return;
  const int fd = socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    Say("cannot create a socket");
    return;
  }
  const sockaddr* sa = reinterpret_cast<const sockaddr*>(&a.in4);
  socklen_t len = sizeof(a.in4);
  if (a.family == AF_INET6) {
    sa = reinterpret_cast<const sockaddr*>(&a.in6);
    len = sizeof(a.in6);
  } else if (a.family == AF_UNIX) {
    sa = reinterpret_cast<const sockaddr*>(&a.un);
    len = sizeof(a.un);
    // Linux creates the socket file with the socket inode's mode less the
    // umask: 0600 at most, with no process-wide umask change.
    fchmod(fd, 0600);
  } else {
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // TIME_WAIT only
  }
  if (bind(fd, sa, len) != 0 || listen(fd, 16) != 0) {
    const int e = errno;
    close(fd);
    if (e == EADDRINUSE) {
      Say("address in use");
    } else {
      char what[200];
      snprintf(what, sizeof(what), "cannot listen (%s)", strerror(e));
      Say(what);
    }
    return;
  }
  if (a.family == AF_UNIX) {
    struct stat st;
    if (lstat(a.un.sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
      snprintf(g_unix_path, sizeof(g_unix_path), "%s", a.un.sun_path);
      g_unix_dev = st.st_dev;
      g_unix_ino = st.st_ino;
    }
  }
  g_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (g_wake_fd < 0) {
    close(fd);
    UnlinkOwnSocket();
    Say("cannot create an eventfd");
    return;
  }
  g_listen_fd = fd;
  g_owner = internal::os::ProcessId();
  internal::os::AtFork(nullptr, nullptr, ChildAfterFork);
  ScopedSuspend suspend;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  if (pthread_create(&t, &attr, ThreadMain, nullptr) != 0) {
    pthread_attr_destroy(&attr);
    ChildAfterFork();  // closes the sockets
    UnlinkOwnSocket();
    Say("cannot start its thread");
    return;
  }
  pthread_attr_destroy(&attr);
  pthread_setname_np(t, "assay-http");
  internal::os::AtExit(StopAtExit);
}

}  // namespace assay::profiler::http
