// The debug heap (ASSAY_DEBUG): what libumem's UMEM_DEBUG gave Solaris.
//
// Off by default and free when off: the only cost is one flag test on the
// allocator's slow paths. When on, every allocation takes those slow paths
// (the thread caches stay empty, and every debug block lives where the free
// fast path declines it) and is served here:
//
//  - a small block (header + request + redzone <= kMaxSmallSize, alignment
//    <= 16) is one block of the sampled pool, laid out as
//        [Header, 48 B][request][tail redzone: pattern up to the block's end]
//    so its free always reaches the slow path (sampled spans have slice
//    class 0) and the header is found from the pointer with no table;
//  - any other block (big, over-aligned, or guarded) is a mapping of its own,
//    its Header kept in a table keyed by the user pointer; with `guard` the
//    block ends against a PROT_NONE page (and a page-aligned block also
//    starts after one).
//
// Freed blocks wait in a FIFO quarantine filled with a pattern (mapped ones
// are made inaccessible instead), so a double free finds the block still
// marked freed, and a write after free is found when it leaves.
#pragma once

#include "alloc/debug_hooks.h"
#include "base/base.h"

namespace assay::profiler {
struct Stack;
}

namespace assay::internal::debug {

struct Config {
  bool redzone = false;
  bool guard = false;        // any guard option
  bool guard_big = false;    // `guard`: every block of a page or more
  uint64_t guard_every = 0;  // `guard=N`: 1 in N blocks (0: none)
  bool freecheck = false;
  uint64_t quarantine_bytes = 16 << 20;
  bool audit = false;
  int audit_depth = 32;
  bool leaks = false;
  bool leaks_error = false;
  char leak_profile[256] = {};  // path of the leak profile ("" none; default set by Init)
};

const Config& GetConfig();

// Parses ASSAY_DEBUG (may be null). A bad key prints one line naming it;
// the rest still applies. Does not allocate.
void Init(const char* text);
// Parses ASSAY_DEBUG's value `text` (may be null) onto *out, reporting bad
// items as Init does; Init then derives what the options imply (leaks
// implies audit, the default leak profile path). No allocation.
void ParseConfig(const char* text, Config* out);
// Work that may allocate (exit handler, fault handler); after the allocator is ready.
void InitLate();

// ---- Shared by debug*.cc ----

inline constexpr uint32_t kLive = 0x4c495645;   // "LIVE"
inline constexpr uint32_t kFreed = 0x46524545;  // "FREE"
inline constexpr uint8_t kRedzoneByte = 0xbb;   // after (and just before) a block
inline constexpr uint8_t kFreedByte = 0xdd;     // a freed block in quarantine
inline constexpr uint8_t kFreshByte = 0xaa;     // a new block (not calloc)
inline constexpr uint64_t kCanary = 0xbbbbbbbbbbbbbbbbull;

// Flags in Header::flags.
inline constexpr uint32_t kMapped = 1;       // a mapping of its own (else a sampled-pool block)
inline constexpr uint32_t kProfiled = 2;     // the profiler holds an entry for it
inline constexpr uint32_t kGuarded = 4;      // ends (and maybe starts) at a PROT_NONE page
inline constexpr uint32_t kMarked = 8;       // reached by the leak scan
inline constexpr uint32_t kGuardFront = 16;  // starts right after a PROT_NONE page
// A guarded block that realloc grew: it starts at the front of its pages and
// has room to grow in place up to its guard page; the room is redzone.
inline constexpr uint32_t kGrown = 32;

struct Header {
  uint64_t size;                 // bytes requested
  profiler::Stack* alloc_stack;  // audit: where it was allocated (a reference held)
  profiler::Stack* free_stack;   // audit: where it was freed, while in quarantine
  uint32_t flags;
  uint32_t state;   // kLive, kFreed; 0 once given back
  void* reserved;   // keeps the header 48 bytes (user blocks stay 16-aligned)
  uint64_t canary;  // kCanary: an underrun by up to 8 bytes shows here
};
static_assert(sizeof(Header) == 48, "the user block must stay 16-aligned");

// A block found from a pointer into it.
struct Block {
  Header* header;  // nullptr: no debug block there
  char* user;      // the pointer malloc returned
  char* end;       // end of the memory after `user` that the block owns (redzone included)
};

// The block whose user pointer is exactly p (nullptr header if none).
Block FindExact(const void* p);
// The live small block holding address a anywhere in [user, user + size],
// for the leak scan (interior pointers count; mapped blocks it finds itself).
Block FindContaining(uintptr_t a);
// The mapped block whose mapping (guard pages included) holds a; *in_guard
// tells whether a is outside its user memory. Reads the table without its
// lock: only for the fault handler.
Block FindMappedNear(uintptr_t a, bool* in_guard);
// The whole mapping of a mapped block (false for a small one).
bool MappedExtent(const Header* h, uintptr_t* lo, uintptr_t* hi);

struct Counters {
  uint64_t live_blocks;
  uint64_t live_bytes;     // requested
  uint64_t guarded_total;  // blocks ever placed against a guard page
  uint64_t quarantine_blocks;
  uint64_t quarantine_bytes;
};
Counters GetCounters();
// Options in force, as ASSAY_DEBUG would spell them ("" when off).
void FormatOptions(char* buf, size_t size);

void LockForFork();
void UnlockAfterFork(bool child);

// Calls fn for every live block (small ones by walking the sampled spans,
// mapped ones from the table). fn must not allocate.
void ForEachLive(void (*fn)(const Block& b, void* arg), void* arg);
// For the leak scan, which stops the other threads and must not wait for a
// lock one of them holds: takes the quarantine, table and page-heap locks (in
// the fork handler's order), and ForEachLive with them held.
void LockForLeakScan();
void UnlockAfterLeakScan();
void ForEachLiveLocked(void (*fn)(const Block& b, void* arg), void* arg);

// Captures the calling site's stack (audit), nullptr when not auditing.
profiler::Stack* CaptureSite();

// ---- Reports (debug_report.cc): one line naming the error first, then
// the block and its stacks on stderr. Those marked [[noreturn]] abort.
[[noreturn]] void ReportInvalidFree(const char* op, const void* p);
[[noreturn]] void ReportDoubleFree(const char* op, const Block& b);
[[noreturn]] void ReportOverrun(const char* when, const Block& b, ptrdiff_t offset);
[[noreturn]] void ReportUseAfterFree(const char* when, const Block& b, size_t offset);
// printf to stderr through one line buffer, without stdio (lines longer than
// 1 KiB are cut).
void Print(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Writes a stack, one frame per line, indented (symbolized by dladdr).
void WriteStack(const profiler::Stack* s, int max_frames);
void InstallFaultHandler();

// ---- Leak scan (debug_leaks.cc) ----
// Runs the scan and prints the summary; returns the number of leaked blocks.
size_t CheckLeaks();

}  // namespace assay::internal::debug
