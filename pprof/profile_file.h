// The one writer of profile and output files: the pprof writer (dumps,
// leak profiles, assay_write_profile) and the `assay` command both write
// through it, so every such file is created the same safe way.
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include <string>

namespace assay::pprof {

// Profiles may hold addresses, paths and symbol names of the program: only
// its owner reads them unless asked otherwise.
constexpr mode_t kProfileFileMode = 0600;

// Writes `size` bytes at `data` to `path`, replacing any file (or symlink)
// there atomically: a reader sees the old file or the whole new one. The
// bytes go to a new file of the same directory with an unpredictable name
// (CreateTempFileBeside), which is renamed onto `path`; nothing ever writes
// through an existing name, so a symlink planted at any name cannot redirect
// the write. The file gets exactly `mode` (permission bits), whatever the
// umask. Returns 0, or an errno value with a one-line message in err (which
// names the file); on failure no temporary file is left behind.
int WriteFileReplacing(const char* path, const void* data, size_t size, mode_t mode, char* err,
                       size_t errlen);

// Creates and opens for writing a new file beside `path` (same directory),
// named `<path's name>.tmp.<16 random characters>` (the name part shortened
// to fit NAME_MAX), with O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, then fchmod to
// `mode`. The randomness comes from getrandom(2) (or /dev/urandom); a name
// that exists already is drawn again. Returns the descriptor and sets
// *tmp_path, or returns -errno.
int CreateTempFileBeside(const char* path, mode_t mode, std::string* tmp_path);

// Tests only: replaces the random source (fill the buffer, return 0 or an
// errno value); nullptr restores getrandom(2). Not thread-safe.
using RandomFillFn = int (*)(void* buf, size_t len);
void SetRandomSourceForTesting(RandomFillFn fill);

}  // namespace assay::pprof
