// The option-table engine (base/option_table.h) on a table of its own: every
// field type and value kind, the shapes of an item, the error-line wording
// knobs, and ValidOptionTable's refusals of malformed tables.
#include "base/option_table.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>

namespace assay::internal {
namespace {

struct Toy {
  bool flag = false;
  bool seen = false;
  int small = 5;
  int64_t wide = -7;
  uint64_t bytes = 0;
  char name[8] = "none";
};

bool ParseEven(const char* s, size_t len, int64_t* out) {
  if (len != 1 || s[0] < '0' || s[0] > '9' || (s[0] - '0') % 2 != 0) return false;
  *out = s[0] - '0';
  return true;
}

#define F(member) ASSAY_OPTION_FIELD(Toy, member)
constexpr OptionSpec kToy[] = {
    FlagOption("flag", F(flag)),
    NumberOption("small", F(small), -3, 3, "-3..3").OrBare(F(wide), 99).Also(F(seen)),
    NumberOption("wide", F(wide), INT64_MIN / 4, INT64_MAX, "any"),
    NumberOption("bytes", F(bytes), 0, int64_t{1} << 40, "bytes"),
    StringOption("name", F(name), 2, "2..7 bytes").OnlyWithValue(),
    WordOption("colour", F(small), {"red", 1}, {"blue", 2}, "red or blue"),
    CustomOption("even", F(wide), ParseEven, "an even digit"),
};
#undef F
static_assert(ValidOptionTable(kToy, sizeof(kToy) / sizeof(kToy[0])));

// Malformed tables that must not compile into a parser.
constexpr OptionSpec kStringIntoInt[] = {StringOption("s", ASSAY_OPTION_FIELD(Toy, small), 0, "")};
static_assert(!ValidOptionTable(kStringIntoInt, 1));
constexpr OptionSpec kTooWideForInt[] = {
    NumberOption("n", ASSAY_OPTION_FIELD(Toy, small), 0, int64_t{1} << 40, "")};
static_assert(!ValidOptionTable(kTooWideForInt, 1));
constexpr OptionSpec kNegativeUnsigned[] = {
    NumberOption("n", ASSAY_OPTION_FIELD(Toy, bytes), -1, 1, "")};
static_assert(!ValidOptionTable(kNegativeUnsigned, 1));
constexpr OptionSpec kBoolRange[] = {NumberOption("n", ASSAY_OPTION_FIELD(Toy, flag), 0, 2, "")};
static_assert(!ValidOptionTable(kBoolRange, 1));
constexpr OptionSpec kMinTooLong[] = {StringOption("s", ASSAY_OPTION_FIELD(Toy, name), 8, "")};
static_assert(!ValidOptionTable(kMinTooLong, 1));
constexpr OptionSpec kAlsoNotBool[] = {NumberOption("n", ASSAY_OPTION_FIELD(Toy, wide), 0, 1, "")
                                           .Also(ASSAY_OPTION_FIELD(Toy, bytes))};
static_assert(!ValidOptionTable(kAlsoNotBool, 1));

OptionGrammar Grammar(bool stop_at_error) {
  return {.var = "TOY",
          .specs = kToy,
          .count = sizeof(kToy) / sizeof(kToy[0]),
          .unknown = "what is",
          .bad = "wrong",
          .expected = "want ",
          .known = "see the manual",
          .list_keys = false,
          .quote_item = false,
          .quote_max = 0,
          .outcome = "skipped",
          .stop_at_error = stop_at_error};
}

std::string Parse(const OptionGrammar& g, const char* text, Toy* toy, int* bad) {
  int p[2];
  EXPECT_EQ(pipe(p), 0);
  const int saved = dup(2);
  dup2(p[1], 2);
  close(p[1]);
  *bad = ParseOptionText(g, text, toy);
  dup2(saved, 2);
  close(saved);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(p[0], buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  return out;
}

TEST(OptionTable, EveryFieldTypeAndKind) {
  Toy t;
  int bad = -1;
  EXPECT_EQ(Parse(Grammar(false), "flag,small=-3,bytes=2g,name=abcdefg,wide=-4k", &t, &bad), "");
  EXPECT_EQ(bad, 0);
  EXPECT_TRUE(t.flag);
  EXPECT_TRUE(t.seen);
  EXPECT_EQ(t.small, -3);
  EXPECT_EQ(t.wide, -4096);
  EXPECT_EQ(t.bytes, uint64_t{2} << 30);
  EXPECT_STREQ(t.name, "abcdefg");
  EXPECT_EQ(Parse(Grammar(false), "colour=blue,even=8", &t, &bad), "");
  EXPECT_EQ(t.small, 2);
  EXPECT_EQ(t.wide, 8);
}

TEST(OptionTable, BareFormOfAKeyThatTakesAValue) {
  Toy t;
  int bad = -1;
  EXPECT_EQ(Parse(Grammar(false), "small", &t, &bad), "");
  EXPECT_EQ(bad, 0);
  EXPECT_TRUE(t.seen);
  EXPECT_EQ(t.small, 5);  // untouched: the bare form sets `wide`
  EXPECT_EQ(t.wide, 99);
}

TEST(OptionTable, ShapesAndWording) {
  Toy t;
  int bad = 0;
  const std::string err =
      Parse(Grammar(false),
            "flag=1,name,wide,small=4,colour=green,even=3,name=x,name=12345678,zz=1", &t, &bad);
  EXPECT_EQ(bad, 9);
  EXPECT_EQ(err,
            "assay: TOY: what is 'flag' (see the manual); skipped\n"
            "assay: TOY: what is 'name' (see the manual); skipped\n"
            "assay: TOY: wrong 'wide' (want any); skipped\n"
            "assay: TOY: wrong 'small' (want -3..3); skipped\n"
            "assay: TOY: wrong 'colour' (want red or blue); skipped\n"
            "assay: TOY: wrong 'even' (want an even digit); skipped\n"
            "assay: TOY: wrong 'name' (want 2..7 bytes); skipped\n"
            "assay: TOY: wrong 'name' (want 2..7 bytes); skipped\n"
            "assay: TOY: what is 'zz' (see the manual); skipped\n");
  const Toy defaults;
  EXPECT_FALSE(t.flag);
  EXPECT_FALSE(t.seen);
  EXPECT_EQ(t.small, defaults.small);
  EXPECT_EQ(t.wide, defaults.wide);
  EXPECT_STREQ(t.name, defaults.name);
}

TEST(OptionTable, StopAtErrorQuoteItemAndKeyList) {
  OptionGrammar g = Grammar(true);
  g.quote_item = true;
  g.quote_max = 6;
  g.list_keys = true;
  Toy t;
  int bad = 0;
  EXPECT_EQ(Parse(g, "flag,nosuchkey=1,small=1", &t, &bad),
            "assay: TOY: what is 'nosuch' (keys: flag small wide bytes name colour even); "
            "skipped\n");
  EXPECT_EQ(bad, 1);
  EXPECT_TRUE(t.flag);
  EXPECT_EQ(t.small, 5);  // after the bad item: not parsed
}

TEST(OptionTable, ALineLongerThanItsBufferIsWrittenWhole) {
  const std::string key(2000, 'q');
  Toy t;
  int bad = 0;
  EXPECT_EQ(Parse(Grammar(false), key.c_str(), &t, &bad),
            "assay: TOY: what is '" + key + "' (see the manual); skipped\n");
}

}  // namespace
}  // namespace assay::internal
