// Every replaceable C++ operator new/delete form as assay implements them: plain, array,
// nothrow, aligned (align_val_t), sized and aligned+sized delete; std::bad_alloc and nullptr on
// impossible sizes; the new_handler protocol.
#include <malloc.h>
#include <stdint.h>
#include <string.h>

#include <memory>
#include <new>
#include <string>
#include <vector>

#include "assay/assay.h"
#include "gtest/gtest.h"

namespace {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

template <typename T>
T Opaque(T v) {
  asm volatile("" : "+r"(v));
  return v;
}

bool IsAligned(const void* p, size_t align) { return reinterpret_cast<uintptr_t>(p) % align == 0; }

// Checks p is a live assay block of at least n bytes and writes all of it.
void Use(void* p, size_t n) {
  ASSERT_NE(p, nullptr);
  ASSERT_GE(malloc_usable_size(p), n);  // aborts if assay never returned p
  memset(p, 0x7e, n);
}

// Size 0 last: it is the odd one out for the mapping-backed alignments.
const size_t kSizes[] = {1, 8, 100, 1000, 4096, 100000, 300000, 2 * kMiB, 3 * kMiB, 0};
const size_t kImpossible[] = {size_t{1} << 62, SIZE_MAX, SIZE_MAX - 4095, (SIZE_MAX >> 1) + 1};

std::vector<size_t> Alignments() {
  std::vector<size_t> aligns;
  for (size_t a = 32; a <= 64 * kKiB; a *= 2) aligns.push_back(a);
  aligns.push_back(1 * kMiB);
  return aligns;
}

TEST(CxxNew, PlainAndArray) {
  for (size_t n : kSizes) {
    void* p = ::operator new(n);
    Use(p, n);
    ::operator delete(p);
    void* a = ::operator new[](n);
    Use(a, n);
    ::operator delete[](a);
  }
}

TEST(CxxNew, Nothrow) {
  for (size_t n : kSizes) {
    void* p = ::operator new(n, std::nothrow);
    Use(p, n);
    ::operator delete(p, std::nothrow);
    void* a = ::operator new[](n, std::nothrow);
    Use(a, n);
    ::operator delete[](a, std::nothrow);
  }
}

TEST(CxxNew, SizedDelete) {
  for (size_t n : kSizes) {
    void* p = ::operator new(n);
    Use(p, n);
    ::operator delete(p, n);
    void* a = ::operator new[](n);
    Use(a, n);
    ::operator delete[](a, n);
  }
}

TEST(CxxNew, Aligned) {
  for (size_t n : kSizes) {
    for (size_t align : Alignments()) {
      const std::align_val_t al{align};
      void* p = ::operator new(n, al);
      EXPECT_TRUE(IsAligned(p, align)) << p << " align " << align << " size " << n;
      Use(p, n);
      ::operator delete(p, al);

      void* a = ::operator new[](n, al);
      EXPECT_TRUE(IsAligned(a, align)) << a << " align " << align << " size " << n;
      Use(a, n);
      ::operator delete[](a, al);

      void* q = ::operator new(n, al, std::nothrow);
      EXPECT_TRUE(IsAligned(q, align)) << q << " align " << align << " size " << n;
      Use(q, n);
      ::operator delete(q, al, std::nothrow);

      void* b = ::operator new[](n, al, std::nothrow);
      EXPECT_TRUE(IsAligned(b, align)) << b << " align " << align << " size " << n;
      Use(b, n);
      ::operator delete[](b, al, std::nothrow);

      void* s = ::operator new(n, al);
      Use(s, n);
      ::operator delete(s, n, al);

      void* t = ::operator new[](n, al);
      Use(t, n);
      ::operator delete[](t, n, al);
    }
  }
}

struct alignas(256) Overaligned {
  char bytes[300];
};

TEST(CxxNew, NewExpressions) {
  auto* one = new Overaligned;
  EXPECT_TRUE(IsAligned(one, 256)) << one;
  Use(one, sizeof(Overaligned));
  delete one;
  auto* many = new Overaligned[37];
  EXPECT_TRUE(IsAligned(many, 256)) << many;
  Use(many, 37 * sizeof(Overaligned));
  delete[] many;
  auto ints = std::make_unique<int[]>(1000);
  Use(ints.get(), 1000 * sizeof(int));
  std::vector<std::string> strings;
  for (int i = 0; i < 1000; ++i) strings.push_back(std::string(static_cast<size_t>(i), 'x'));
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(strings[static_cast<size_t>(i)].size(), size_t(i));
}

TEST(CxxNew, ImpossibleSizeThrowsBadAlloc) {
  for (size_t n : kImpossible) {
    EXPECT_THROW(::operator delete(::operator new(Opaque(n))), std::bad_alloc) << n;
    EXPECT_THROW(::operator delete[](::operator new[](Opaque(n))), std::bad_alloc) << n;
    for (size_t align : {64ul, 4096ul, 1 * kMiB}) {
      const std::align_val_t al{align};
      EXPECT_THROW(::operator delete(::operator new(Opaque(n), al), al), std::bad_alloc)
          << n << " align " << align;
      EXPECT_THROW(::operator delete[](::operator new[](Opaque(n), al), al), std::bad_alloc)
          << n << " align " << align;
    }
  }
}

TEST(CxxNew, NothrowImpossibleSizeReturnsNull) {
  for (size_t n : kImpossible) {
    EXPECT_EQ(::operator new(Opaque(n), std::nothrow), nullptr) << n;
    EXPECT_EQ(::operator new[](Opaque(n), std::nothrow), nullptr) << n;
    for (size_t align : {64ul, 4096ul, 1 * kMiB}) {
      const std::align_val_t al{align};
      EXPECT_EQ(::operator new(Opaque(n), al, std::nothrow), nullptr) << n << " " << align;
      EXPECT_EQ(::operator new[](Opaque(n), al, std::nothrow), nullptr) << n << " " << align;
    }
  }
}

int g_handler_calls = 0;

// Uninstalls itself on its second call, so the next failure throws.
void CountingHandler() {
  ++g_handler_calls;
  if (g_handler_calls == 2) std::set_new_handler(nullptr);
}

TEST(CxxNew, NewHandlerIsCalledBeforeBadAlloc) {
  g_handler_calls = 0;
  std::set_new_handler(CountingHandler);
  EXPECT_THROW((void)::operator new(Opaque(size_t{1} << 62)), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 2);
  EXPECT_EQ(std::get_new_handler(), nullptr);

  g_handler_calls = 0;
  std::set_new_handler(CountingHandler);
  EXPECT_THROW((void)::operator new[](Opaque(size_t{1} << 62)), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 2);

  g_handler_calls = 0;
  std::set_new_handler(CountingHandler);
  EXPECT_THROW((void)::operator new (Opaque(size_t{1} << 62), std::align_val_t{128}),
               std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 2);
  std::set_new_handler(nullptr);
}

TEST(CxxNew, NothrowNewCallsTheHandlerToo) {
  g_handler_calls = 0;
  std::set_new_handler(CountingHandler);
  EXPECT_EQ(::operator new(Opaque(size_t{1} << 62), std::nothrow), nullptr);
  EXPECT_EQ(g_handler_calls, 2);

  g_handler_calls = 0;
  std::set_new_handler(CountingHandler);
  EXPECT_EQ(::operator new (Opaque(size_t{1} << 62), std::align_val_t{4096}, std::nothrow),
            nullptr);
  EXPECT_EQ(g_handler_calls, 2);
  std::set_new_handler(nullptr);
}

void ThrowingHandler() {
  ++g_handler_calls;
  throw std::bad_alloc();
}

TEST(CxxNew, HandlerThatThrowsEndsNothrowNewWithNull) {
  g_handler_calls = 0;
  std::set_new_handler(ThrowingHandler);
  EXPECT_EQ(::operator new[](Opaque(size_t{1} << 62), std::nothrow), nullptr);
  EXPECT_EQ(g_handler_calls, 1);
  EXPECT_THROW((void)::operator new(Opaque(size_t{1} << 62)), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 2);
  std::set_new_handler(nullptr);
}

}  // namespace
