// The profile endpoint (MALLOC_PROF=http=ADDR): an HTTP/1.1 responder on a
// thread of the profiler's own, `assay-http`, serving pprof profiles at Go's
// net/http/pprof paths so `go tool pprof http://HOST:PORT/debug/pprof/heap`
// and continuous profilers (Parca, Grafana Alloy) read them.
//
// Paths: /debug/pprof/heap (the heap profile), /debug/pprof/allocs (the
// alloc profile: default sample type alloc_space), /debug/pprof/ (an HTML
// index). `?seconds=N` (1..600) answers after N seconds with the change over
// them (snapshot::BuildDelta); `gc` and `debug` are ignored (always gzipped
// pprof). GET and HEAD; another method: 405; another path: 404; a malformed
// request: 400; a head over 8 KiB: 431; no whole head within 5 s: 408 and the
// connection closed; a fifth concurrent connection: 503 and closed. One
// request per connection (Connection: close).
//
// The thread blocks every signal, suspends recording (its allocations are
// never sampled) and serves every connection from one poll() loop over
// non-blocking sockets: a parked ?seconds=N request waits there while others
// are served. It never runs on, or blocks, a program thread. The endpoint is
// the starting process's only: a fork child closes its inherited sockets.
#pragma once

namespace assay::profiler::http {

// Starts the endpoint on `address` (http_request.h: ListenAddress); an
// address other than loopback needs allow_remote. On any failure prints one
// line on stderr and returns: profiling goes on without the endpoint.
// Called once, from dumper::InitFromEnvironment.
void StartServer(const char* address, bool allow_remote);

}  // namespace assay::profiler::http
