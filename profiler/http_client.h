// One connection of the profile endpoint (http_server.cc runs the loop):
// its state machine from the request head to the answer, and its deadlines.
//
// States: reading the head (5 s from accept), parked (a ?seconds=N
// request, until its time is up), writing the answer (30 s at most),
// draining (after the answer: our side shut, the client's bytes read and
// dropped for up to 1 s so closing never resets the answer away).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>

#include "profiler/dumper.h"
#include "profiler/http_request.h"

namespace assay::profiler::http {

inline constexpr int kMaxClients = 4;
inline constexpr uint64_t kRequestTimeoutMs = 5000;

// Shared with the loop and the exit and fork handlers (http_server.cc).
extern int g_client_fds[kMaxClients];  // atomic; -1 before close()
extern uint32_t g_closed;              // atomic: the process is exiting

enum class State { kFree, kReading, kParked, kWriting, kDraining };

struct Client {
  int fd = -1;
  State state = State::kFree;
  uint64_t deadline_ms = 0;
  size_t in_len = 0;
  char in[kMaxRequestHead];
  const char* kind = nullptr;      // "heap" or "alloc"
  const char* filename = nullptr;  // Content-Disposition's
  bool head_only = false;
  snapshot::Snapshot* before = nullptr;  // a parked request's first snapshot
  std::string out;
  size_t out_off = 0;
};

// Handles poll's events on client `slot` at time `now` (ms, coarse clock).
void OnEvents(Client& c, int slot, short revents, uint64_t now);
// Its deadline passed: answers 408, serves a parked request, or closes.
void OnDeadline(Client& c, int slot, uint64_t now);
// Closes the connection and frees its slot (the loop also closes every one
// when it ends).
void Close(Client& c, int slot);

}  // namespace assay::profiler::http
