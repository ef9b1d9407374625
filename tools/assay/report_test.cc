// Unit tests of the assay command's profile handling on synthetic profiles:
// reading errors, sample type choice, drop_frames pruning, top, diff, merge,
// formatting and profile file names.
#include "tools/assay/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "tools/assay/args.h"
#include "tools/assay/format.h"
#include "tools/assay/merge.h"
#include "tools/assay/profile_files.h"
#include "tools/assay/profile_io.h"

namespace assay::cli {
namespace {

// Builds profiles with the four sample types assay writes; stacks are
// function names, innermost first. `shift` offsets every id, so two
// profiles of one builder shape differ in their numbering.
class Builder {
 public:
  explicit Builder(uint64_t shift = 0, const char* default_type = "inuse_space") : shift_(shift) {
    Str("");
    if (shift != 0) Str("padding");  // string indexes differ between profiles too
    for (const char* t : {"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"}) {
      pb::ValueType* vt = p_.add_sample_type();
      vt->set_type(Str(t));
      vt->set_unit(Str(std::string(t).ends_with("objects") ? "count" : "bytes"));
    }
    p_.set_default_sample_type(Str(default_type));
    p_.add_comment(Str("assay heap profile"));
    pb::Mapping* m = p_.add_mapping();
    m->set_id(1 + shift);
    m->set_memory_start(0x400000 + shift * 0x100000);
    m->set_memory_limit(0x500000 + shift * 0x100000);
    m->set_filename(Str("/usr/bin/prog"));
    m->set_build_id(Str("abcd"));
  }

  // values: alloc_objects, alloc_space, inuse_objects, inuse_space
  Builder& Sample(std::vector<std::string> stack, std::vector<int64_t> values,
                  int64_t bytes_label = -1) {
    pb::Sample* s = p_.add_sample();
    for (const std::string& f : stack) s->add_location_id(Location(f));
    for (int64_t v : values) s->add_value(v);
    if (bytes_label >= 0) {
      pb::Label* l = s->add_label();
      l->set_key(Str("bytes"));
      l->set_num(bytes_label);
      l->set_num_unit(Str("bytes"));
    }
    return *this;
  }
  Builder& Drop(const std::string& re) {
    p_.set_drop_frames(Str(re));
    return *this;
  }
  const pb::Profile& profile() const { return p_; }

 private:
  int64_t Str(const std::string& s) {
    auto [it, inserted] = strings_.emplace(s, p_.string_table_size());
    if (inserted) p_.add_string_table(s);
    return it->second;
  }
  uint64_t Location(const std::string& function) {
    auto it = locations_.find(function);
    if (it != locations_.end()) return it->second;
    const uint64_t fid = p_.function_size() + 1 + shift_;
    pb::Function* f = p_.add_function();
    f->set_id(fid);
    f->set_name(Str(function));
    f->set_system_name(Str(function));
    // The n-th function is at the same offset in its mapping in every profile.
    const uint64_t n = static_cast<uint64_t>(p_.location_size()) + 1;
    const uint64_t lid = n + shift_;
    pb::Location* l = p_.add_location();
    l->set_id(lid);
    l->set_mapping_id(1 + shift_);
    l->set_address(0x400100 + shift_ * 0x100000 + 16 * n);
    l->add_line()->set_function_id(fid);
    locations_[function] = lid;
    return lid;
  }

  uint64_t shift_;
  pb::Profile p_;
  std::map<std::string, int64_t> strings_;
  std::map<std::string, uint64_t> locations_;
};

std::vector<int64_t> Inuse(int64_t bytes) { return {1, bytes, 1, bytes}; }

const FunctionRow* Row(const TopReport& r, const std::string& name) {
  for (const FunctionRow& row : r.rows) {
    if (row.name == name) return &row;
  }
  return nullptr;
}

TEST(CliReport, TopFlatAndCumCountRecursionOnce) {
  Builder b;
  b.Sample({"a", "main"}, Inuse(100))
      .Sample({"b", "a", "main"}, Inuse(50))
      .Sample({"a", "b", "a", "main"}, Inuse(10));
  const TopReport r = BuildTop(b.profile(), 3, false);
  EXPECT_EQ(r.total, 160);
  EXPECT_EQ(r.samples, 3);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0].name, "a");
  EXPECT_EQ(r.rows[0].flat, 110);
  EXPECT_EQ(r.rows[0].cum, 160);
  EXPECT_EQ(Row(r, "b")->flat, 50);
  EXPECT_EQ(Row(r, "b")->cum, 60);
  EXPECT_EQ(Row(r, "main")->flat, 0);
  EXPECT_EQ(Row(r, "main")->cum, 160);
  const TopReport c = BuildTop(b.profile(), 3, true);
  EXPECT_EQ(c.rows[0].cum, 160);
  EXPECT_EQ(c.rows[0].name, "a");  // ties on cum break by flat
  EXPECT_EQ(c.rows[1].name, "main");
}

TEST(CliReport, ChoosesSampleTypes) {
  Builder heap;
  heap.Sample({"f"}, {1, 2, 3, 4});
  const pb::Profile& p = heap.profile();
  EXPECT_EQ(ChooseSampleType(p, {}, "x").type, "inuse_space");
  EXPECT_EQ(ChooseSampleType(p, {Space::kAlloc, false}, "x").type, "alloc_space");
  EXPECT_EQ(ChooseSampleType(p, {Space::kDefault, true}, "x").type, "inuse_objects");
  EXPECT_EQ(ChooseSampleType(p, {Space::kAlloc, true}, "x").index, 0);
  Builder alloc(0, "alloc_space");
  EXPECT_EQ(ChooseSampleType(alloc.profile(), {Space::kDefault, true}, "x").type, "alloc_objects");
  pb::Profile odd = p;
  odd.mutable_sample_type(0)->set_type(0);
  try {
    ChooseSampleType(odd, {Space::kAlloc, true}, "odd.pb.gz");
    FAIL() << "no alloc_objects";
  } catch (const Failure& e) {
    EXPECT_NE(std::string(e.what()).find("odd.pb.gz: the profile has no sample type alloc_objects"),
              std::string::npos)
        << e.what();
  }
}

TEST(CliReport, DropFramesCutsAllocatorFrames) {
  Builder b;
  b.Drop("(malloc|operator new.*|assay::internal::.*)")
      .Sample({"assay::internal::Slow(int)", "malloc", "Parse", "main"}, Inuse(64))
      .Sample({"operator new(unsigned long)", "Build", "main"}, Inuse(32))
      .Sample({"malloc"}, Inuse(8));  // no user frame: kept as it is
  const TopReport r = BuildTop(b.profile(), 3, false);
  EXPECT_EQ(Row(r, "Parse")->flat, 64);
  EXPECT_EQ(Row(r, "Build")->flat, 32);
  EXPECT_EQ(Row(r, "malloc")->flat, 8);
  EXPECT_EQ(Row(r, "assay::internal::Slow(int)"), nullptr);
  EXPECT_EQ(Row(r, "operator new(unsigned long)"), nullptr);
}

TEST(CliReport, SimplifiesFunctionNames) {
  EXPECT_EQ(SimplifyFunctionName("foo(int, char)"), "foo");
  EXPECT_EQ(SimplifyFunctionName("plain"), "plain");
  EXPECT_EQ(SimplifyFunctionName("(anonymous namespace)::f(int)"), "(anonymous namespace)::f");
  EXPECT_EQ(SimplifyFunctionName("Functor::operator()(int)"), "Functor::operator()");
}

TEST(CliReport, DiffByFunctionAndStack) {
  Builder old_b, new_b(7);
  old_b.Sample({"grow", "main"}, Inuse(100)).Sample({"shrink", "main"}, Inuse(500));
  new_b.Sample({"grow", "main"}, Inuse(1000))
      .Sample({"grow", "other", "main"}, Inuse(50))
      .Sample({"shrink", "main"}, Inuse(200));
  const DiffReport d = BuildDiff(old_b.profile(), 3, new_b.profile(), 3);
  EXPECT_EQ(d.old_total, 600);
  EXPECT_EQ(d.new_total, 1250);
  ASSERT_EQ(d.functions.size(), 2u);
  EXPECT_EQ(d.functions[0].frames, std::vector<std::string>{"grow"});
  EXPECT_EQ(d.functions[0].Delta(), 950);
  EXPECT_EQ(d.functions[1].frames, std::vector<std::string>{"shrink"});
  EXPECT_EQ(d.functions[1].Delta(), -300);
  ASSERT_EQ(d.stacks.size(), 3u);
  EXPECT_EQ(d.stacks[0].frames, (std::vector<std::string>{"grow", "main"}));
  EXPECT_EQ(d.stacks[0].Delta(), 900);
  EXPECT_EQ(d.stacks[1].Delta(), 50);
  EXPECT_EQ(d.stacks[2].Delta(), -300);
}

TEST(CliReport, MergeSumsIdenticalStacksAndLabels) {
  Builder a, b(3);
  a.Sample({"f", "main"}, Inuse(100), 16).Sample({"g", "main"}, Inuse(10));
  b.Sample({"f", "main"}, Inuse(50), 16)    // same stack and label: summed
      .Sample({"f", "main"}, Inuse(7), 32)  // other label: its own sample
      .Sample({"h", "main"}, Inuse(1));
  const pb::Profile m = MergeProfiles({a.profile(), b.profile()}, {"a", "b"});
  ASSERT_NO_THROW(ValidateProfile(m, "merged"));
  EXPECT_EQ(m.sample_size(), 4);
  EXPECT_EQ(m.mapping_size(), 1);  // same build id, size and offset: one mapping
  EXPECT_EQ(m.function_size(), 4);
  EXPECT_EQ(Total(m, 3), 168);
  const TopReport r = BuildTop(m, 3, false);
  EXPECT_EQ(Row(r, "f")->flat, 157);
  EXPECT_EQ(Row(r, "g")->flat, 10);
  EXPECT_EQ(Row(r, "h")->flat, 1);
  EXPECT_EQ(Row(r, "main")->cum, 168);
  EXPECT_EQ(StringAt(m, m.default_sample_type()), "inuse_space");
  // Addresses were rebased onto the first profile's mapping.
  for (const pb::Location& l : m.location()) {
    EXPECT_GE(l.address(), m.mapping(0).memory_start());
    EXPECT_LT(l.address(), m.mapping(0).memory_limit());
  }
}

TEST(CliReport, MergeRefusesOtherSampleTypes) {
  Builder a, b;
  pb::Profile other = b.profile();
  other.mutable_sample_type()->RemoveLast();
  EXPECT_THROW(MergeProfiles({a.profile(), other}, {"a", "b"}), Failure);
}

class ProfileFileTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) {
    return ::testing::TempDir() + "/cli_report_test." + std::to_string(getpid()) + "." + name;
  }
  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = Path(name);
    std::ofstream(path, std::ios::binary) << bytes;
    paths_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const std::string& p : paths_) unlink(p.c_str());
  }
  // The message ReadProfile throws for `path`.
  static std::string ErrorOf(const std::string& path) {
    try {
      ReadProfile(path);
    } catch (const Failure& e) {
      return e.what();
    }
    return "";
  }
  std::vector<std::string> paths_;
};

TEST_F(ProfileFileTest, RoundTrip) {
  Builder b;
  b.Sample({"f", "main"}, Inuse(4096));
  const std::string path = Path("round.pb.gz");
  paths_.push_back(path);
  WriteProfile(b.profile(), path);
  const pb::Profile p = ReadProfile(path);
  EXPECT_EQ(Total(p, 3), 4096);
  EXPECT_EQ(Comments(p), "assay heap profile");
}

TEST_F(ProfileFileTest, ClearErrors) {
  const std::string missing = Path("missing.pb.gz");
  EXPECT_EQ(ErrorOf(missing), missing + ": cannot open: No such file or directory");
  const std::string empty = Write("empty", "");
  EXPECT_EQ(ErrorOf(empty), empty + ": empty file, not a profile");
  const std::string text = Write("text", "hello world\n");
  EXPECT_NE(ErrorOf(text).find(text + ": not gzip-compressed"), std::string::npos);
  const std::string garbage = Write("garbage.gz", Gzip("this is not a protobuf message\xff\xff"));
  EXPECT_NE(ErrorOf(garbage).find(garbage + ": gzip data is not a pprof profile"),
            std::string::npos)
      << ErrorOf(garbage);
  Builder b;
  b.Sample({"f"}, Inuse(1));
  const std::string good = Gzip(b.profile().SerializeAsString());
  const std::string cut = Write("cut.gz", good.substr(0, good.size() / 2));
  EXPECT_NE(ErrorOf(cut).find(cut + ": truncated gzip data"), std::string::npos) << ErrorOf(cut);
  std::string flipped = good;
  flipped[12] = static_cast<char>(flipped[12] ^ 0x55);
  const std::string corrupt = Write("corrupt.gz", flipped);
  EXPECT_NE(ErrorOf(corrupt).find(corrupt + ": "), std::string::npos);
  // A profile whose sample points at a location that does not exist.
  pb::Profile bad = b.profile();
  bad.mutable_sample(0)->set_location_id(0, 999);
  const std::string dangling = Write("dangling.gz", Gzip(bad.SerializeAsString()));
  EXPECT_NE(ErrorOf(dangling).find("refers to a missing location 999"), std::string::npos)
      << ErrorOf(dangling);
}

TEST(CliFormat, Values) {
  EXPECT_EQ(FormatValue(512, "bytes"), "512B");
  EXPECT_EQ(FormatValue(40 * 1024, "bytes"), "40.0KiB");
  EXPECT_EQ(FormatValue(3 * 1024 * 1024 / 2, "bytes"), "1.50MiB");
  EXPECT_EQ(FormatValue(-200LL * 1024 * 1024, "bytes"), "-200MiB");
  EXPECT_EQ(FormatDelta(2048, "bytes"), "+2.00KiB");
  EXPECT_EQ(FormatValue(42, "count"), "42");
  EXPECT_EQ(FormatPercent(1, 4), "25.00%");
  EXPECT_EQ(FormatPercent(4, 4), "100%");
  EXPECT_EQ(ParseSize("--rate", "64k", 1, 1LL << 40), 65536);
  EXPECT_THROW(ParseSize("--rate", "64q", 1, 1LL << 40), UsageError);
  EXPECT_THROW(ParseInt("-n", "-1", 0, 10), UsageError);
}

TEST(CliFiles, ProfileFileNames) {
  ProfileFile f;
  EXPECT_TRUE(ParseProfileFileName("assay.1234.17.heap.pb.gz", "assay", &f));
  EXPECT_EQ(f.pid, 1234);
  EXPECT_EQ(f.seq, 17u);
  EXPECT_EQ(f.kind, "heap");
  EXPECT_TRUE(ParseProfileFileName("p.9.0.leak.pb.gz", "p", &f));
  EXPECT_FALSE(ParseProfileFileName("assay.1234.17.heap.pb.gz.tmp.99", "assay", &f));
  EXPECT_FALSE(ParseProfileFileName("assay.1234.heap.pb.gz", "assay", &f));
  EXPECT_FALSE(ParseProfileFileName("other.1.2.heap.pb.gz", "assay", &f));
  EXPECT_FALSE(ParseProfileFileName("assay.1.2.cpu.pb.gz", "assay", &f));
}

}  // namespace
}  // namespace assay::cli
