// The OS seam: every mmap, munmap, mremap, madvise, futex, clock, environment
// and stderr call of the allocator goes through here. None of these allocate,
// and none changes errno (the allocator's callers must see errno untouched
// unless an allocation fails).
#pragma once

#include "base/base.h"

namespace assay::internal::os {

// Fresh zeroed read-write memory, or nullptr. `align` is a power of two;
// alignments above the page size over-map and trim.
void* MapAligned(size_t size, size_t align);
void Unmap(void* p, size_t size);
// Fault injection, test-only: SetFaultInjector exists only when the library
// is built with ASSAY_FAULT_INJECTION (CMake option, off by default: a release
// build has neither the hook nor its branch). Before each mmap and mremap the
// injector, if set, is asked; true makes the call fail as the kernel's does on
// exhaustion (MapAligned/Remap return nullptr; the caller reports ENOMEM).
// The injector runs inside the allocator: it must not allocate.
enum class FaultOp { kMap, kRemap };
using FaultInjector = bool (*)(FaultOp op, size_t size);
#ifdef ASSAY_FAULT_INJECTION
void SetFaultInjector(FaultInjector injector);
#endif

// Grows or shrinks a mapping, moving it if needed; nullptr on failure (the
// old mapping is then untouched).
void* Remap(void* p, size_t old_size, size_t new_size);
// Gives the pages back: resident memory drops at once, contents read as zero.
void Purge(void* p, size_t size);
// Fills vec[i] with 1 if page i of [p, p + size) is resident, else 0 (p
// page-aligned, vec of size / kPageSize bytes); false if the kernel refuses.
bool Resident(const void* p, size_t size, unsigned char* vec);
// Makes pages inaccessible (guard pages); true on success.
bool ProtectNone(void* p, size_t size);
// True if every page of [p, p + size) is mapped (p page-aligned); for the
// checked build's walks.
bool IsMapped(const void* p, size_t size);

// Futex wait while *word == expected (up to timeout_ms, or forever if < 0),
// and wake up to `count` waiters.
void FutexWait(const uint32_t* word, uint32_t expected, int64_t timeout_ms);
void FutexWake(const uint32_t* word, int count);
// A full memory barrier on every running thread of the process
// (membarrier(2)), so that a thread that ran only a compiler barrier pairs
// with the caller as if it had fenced; false if the kernel refuses it.
bool FenceAllThreads();

uint64_t NowMs();  // monotonic clock, milliseconds (coarse, vDSO)
uint64_t NowNs();  // monotonic clock, nanoseconds
int64_t WallNs();  // wall clock (CLOCK_REALTIME), nanoseconds since the epoch
int ProcessId();
uint64_t ThreadId();
void Yield();

// Reads an environment variable without allocating; nullptr if unset, and
// nullptr always in secure execution (SecureExecution()): then the user who
// runs the program is not the one it runs as, so the environment is theirs
// and must not steer the allocator (file prefixes, debug modes, tuning), as
// glibc ignores its malloc tunables and jemalloc uses secure_getenv.
const char* GetEnv(const char* name);

// True when the kernel started this process in secure-execution mode
// (getauxval(AT_SECURE): setuid, setgid, file capabilities, LSM
// transitions). Reads the auxiliary vector: no allocation, valid before
// libc's constructors run.
bool SecureExecution();

// 64 random bits (getrandom; the kernel's AT_RANDOM bytes mixed with the
// clock where getrandom is refused). Never allocates; errno untouched.
uint64_t RandomU64();

// Writes to stderr without allocating or buffering.
void WriteStderr(const char* s, size_t n);
void WriteStderr(const char* s);
[[noreturn]] void Abort();

// ---- Files and processes, for the heap walk, stats and reports. Unlike the
// calls above these set errno as the system calls do (their callers report it).

// Reads up to size - 1 bytes of a small file (a /proc file) into buf and
// terminates it; the bytes read, or -1.
long ReadSmallFile(const char* path, char* buf, size_t size);
// Opens a file for reading (close-on-exec): its descriptor, or -1.
int OpenReadOnly(const char* path);
// Writes all n bytes (retrying after EINTR and short writes); false on error.
bool WriteAll(int fd, const void* p, size_t n);
// Reads up to n bytes (retrying after EINTR): the count, 0 at end of file, -1.
long ReadSome(int fd, void* p, size_t n);
bool Pipe(int fds[2]);  // close-on-exec
void Close(int fd);
// A raw fork: clone(SIGCHLD) with no atfork handler run, so a caller holding
// every allocator lock gets a still copy of the heap in the child. The child's
// pid, 0 in the child, -1 on failure.
long CloneProcess();
// Waits for child pid: true and its wait status, or false.
bool WaitChild(long pid, int* status);
// pthread_atfork: handlers run around fork(), dropped if this object is
// unloaded. Registered as glibc's libc_nonshared stub registers them (with
// the object's __dso_handle): the stub, linked at the end of libassay.so's
// text, cost a small program a 64 KiB chunk of it (the kernel's fault-around).
bool AtFork(void (*prepare)(), void (*parent)(), void (*child)());
// atexit, the same way (libc_nonshared's atexit stub sits there too).
bool AtExit(void (*fn)());
// Ends the whole process at once (no atexit handlers).
[[noreturn]] void ExitGroup(int status);

}  // namespace assay::internal::os
