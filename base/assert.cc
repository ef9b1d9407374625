// The failure report of ASSAY_ASSERT (base/assert.h): one line formatted on
// the stack and written at once, so that it neither allocates nor
// interleaves with another thread's report.
#include "base/assert.h"

#include "base/os.h"

namespace assay::internal {
namespace {

// Appends s to buf[*len..cap), truncating.
void Append(char* buf, size_t cap, size_t* len, const char* s) {
  while (*s != '\0' && *len < cap) buf[(*len)++] = *s++;
}

// The path from the source tree's top (its last two components), not the
// build's absolute one.
const char* ShortPath(const char* file) {
  const char* last = nullptr;
  const char* before = file;
  for (const char* p = file; *p != '\0'; ++p) {
    if (*p != '/') continue;
    if (last != nullptr) before = last + 1;
    last = p;
  }
  return before;
}

}  // namespace

void AssertFail(const char* cond, const char* file, int line) {
  char buf[512];
  const size_t cap = sizeof(buf) - 1;  // room for the newline
  size_t len = 0;
  Append(buf, cap, &len, "assay: assertion failed: ");
  Append(buf, cap, &len, cond);
  Append(buf, cap, &len, " at ");
  Append(buf, cap, &len, ShortPath(file));
  Append(buf, cap, &len, ":");
  char digits[12];
  size_t nd = 0;
  unsigned v = line < 0 ? 0 : static_cast<unsigned>(line);
  do {
    digits[nd++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (nd > 0 && len < cap) buf[len++] = digits[--nd];
  buf[len++] = '\n';
  os::WriteStderr(buf, len);
  os::Abort();
}

}  // namespace assay::internal
