// Redzone geometry and checks: which bytes before and after a block are
// redzone (front zone by block kind, a tail window of at most kTailCheck
// bytes), filling them, and finding the first changed one.
#include "debug_heap/redzones.h"

namespace assay::internal::debug {
namespace {

size_t FrontZone(const Header* h) {
  if ((h->flags & kMapped) == 0) return 8;  // the header's canary
  return (h->flags & kGuardFront) != 0 ? 0 : 16;
}

// Bytes of the tail redzone that are filled and checked: from the block's
// end, at most kTailCheck.
size_t TailWindow(const Block& b) {
  const size_t room = static_cast<size_t>(b.end - (b.user + b.header->size));
  return room < kTailCheck ? room : kTailCheck;
}

}  // namespace

void FillRedzones(const Block& b) {
  const size_t front = FrontZone(b.header);
  if ((b.header->flags & kMapped) != 0 && front > 0) Fill(b.user - front, front, kRedzoneByte);
  Fill(b.user + b.header->size, TailWindow(b), kRedzoneByte);
}

ptrdiff_t RedzoneDamage(const Block& b) {
  const size_t front = FrontZone(b.header);
  const size_t bad_front = FirstNot(b.user - front, front, kRedzoneByte);
  if (bad_front < front) return -static_cast<ptrdiff_t>(front - bad_front);
  const size_t tail = TailWindow(b);
  const size_t bad = FirstNot(b.user + b.header->size, tail, kRedzoneByte);
  return bad < tail ? static_cast<ptrdiff_t>(b.header->size + bad) : kIntact;
}

void CheckRedzones(const char* when, const Block& b) {
  const ptrdiff_t damage = RedzoneDamage(b);
  if (damage != kIntact) ReportOverrun(when, b, damage);
}

}  // namespace assay::internal::debug
