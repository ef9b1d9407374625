// The pprof builder with no profiler around it: a hand-made AssayProfileData
// (profiler/profile_data.h) goes through the plugin's entry point
// assay_pprof_write, and the file is gunzipped and parsed with the generated
// protobuf classes: sample types, period, values, locations (shared frames
// share one), functions of the test's own extern "C" sites, labels, mappings.
#include <dirent.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "profiler/profile_data.h"
#include "proto/profile.pb.h"
#include "tests/gunzip_util.h"

// Sites named in the profile: extern "C" (their names are not mangled), never
// inlined, in this executable's .symtab.
extern "C" __attribute__((noinline, used)) int assay_pprof_test_site_a(int x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
extern "C" __attribute__((noinline, used)) int assay_pprof_test_site_b(int x) {
  asm volatile("" ::: "memory");
  return x * 3;
}

namespace {

namespace pb = perftools::profiles;

// A "return address" whose call (ret - 1, what the builder looks up) is fn's
// first byte.
uintptr_t ReturnAddressIn(int (*fn)(int)) { return reinterpret_cast<uintptr_t>(fn) + 1; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  return names;
}

class PprofBuilder : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/assay-pprof-builder-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const std::string& n : ListDir(dir_)) unlink((dir_ + "/" + n).c_str());
    rmdir(dir_.c_str());
  }

  // Writes d through the plugin's entry point and parses the file back.
  void WriteAndParse(const AssayProfileData& d, pb::Profile* p) {
    const std::string path = dir_ + "/p.pb.gz";
    char err[512] = "";
    ASSERT_EQ(assay_pprof_write(&d, path.c_str(), err, sizeof(err)), 0) << err;
    EXPECT_EQ(ListDir(dir_), std::vector<std::string>{"p.pb.gz"}) << "a temporary file was left";
    const std::string gz = ReadFile(path);
    ASSERT_GE(gz.size(), 2u);
    EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
    std::string raw;
    ASSERT_TRUE(Gunzip(gz, &raw)) << "not one whole gzip stream";
    ASSERT_TRUE(p->ParseFromString(raw));
  }

  std::string dir_;
};

// Reads strings, labels and locations of a parsed profile.
struct View {
  const pb::Profile& p;
  std::string Str(int64_t i) const {
    EXPECT_GE(i, 0);
    EXPECT_LT(i, p.string_table_size());
    return i >= 0 && i < p.string_table_size() ? p.string_table(static_cast<int>(i)) : "?";
  }
  // "key=num unit" or "key=str" for every label of s.
  std::map<std::string, std::string> Labels(const pb::Sample& s) const {
    std::map<std::string, std::string> m;
    for (const pb::Label& l : s.label()) {
      std::string v = l.str() != 0 ? Str(l.str()) : std::to_string(l.num());
      if (l.num_unit() != 0) v += " " + Str(l.num_unit());
      EXPECT_TRUE(m.emplace(Str(l.key()), v).second) << "label " << Str(l.key()) << " twice";
    }
    return m;
  }
  const pb::Location* Location(uint64_t id) const {
    for (const pb::Location& l : p.location())
      if (l.id() == id) return &l;
    return nullptr;
  }
  const pb::Function* Function(uint64_t id) const {
    for (const pb::Function& f : p.function())
      if (f.id() == id) return &f;
    return nullptr;
  }
  const pb::Mapping* Mapping(uint64_t id) const {
    for (const pb::Mapping& m : p.mapping())
      if (m.id() == id) return &m;
    return nullptr;
  }
  // The function names of a location's lines ("" for an unsymbolized one).
  std::string FunctionOf(uint64_t location_id) const {
    const pb::Location* l = Location(location_id);
    if (l == nullptr || l->line_size() == 0) return "";
    const pb::Function* f = Function(l->line(0).function_id());
    return f == nullptr ? "?" : Str(f->name());
  }
};

TEST_F(PprofBuilder, HandMadeProfileReadsBack) {
  const uintptr_t a = ReturnAddressIn(assay_pprof_test_site_a);
  const uintptr_t b = ReturnAddressIn(assay_pprof_test_site_b);
  const uintptr_t nowhere = 0x10;  // in no mapping: an address with no mapping or function
  const uintptr_t frames[] = {a,      b, a,  // sample 0: a <- b <- a
                              b,      a,     // sample 1: b <- a
                              nowhere};
  AssayProfileSample samples[3] = {};
  samples[0] = {0, 3, {5, 500, 2, 200}, 100, 0, 4242, -1, 1, nullptr};
  samples[1] = {3, 2, {7, 7000, 7, 7000}, 1000, 64, 0, 3, 2, "objects_of_a_cache"};
  samples[2] = {5, 1, {1, 1 << 20, 0, 0}, -1, 0, 0, -1, 0, nullptr};
  AssayProfileData d{};
  d.kind = "heap";
  d.default_sample_type = 3;
  d.time_nanos = 1700000000123456789;
  d.duration_nanos = 42000000000;
  d.period = 524288;
  d.samples = samples;
  d.nsamples = 3;
  d.frames = frames;
  d.nframes = 6;
  d.comment = "a hand-made profile";

  pb::Profile p;
  ASSERT_NO_FATAL_FAILURE(WriteAndParse(d, &p));
  const View v{p};
  ASSERT_GT(p.string_table_size(), 0);
  EXPECT_EQ(p.string_table(0), "");

  // Sample types, in the order of AssayProfileSample::values.
  const char* const kTypes[4][2] = {{"alloc_objects", "count"},
                                    {"alloc_space", "bytes"},
                                    {"inuse_objects", "count"},
                                    {"inuse_space", "bytes"}};
  ASSERT_EQ(p.sample_type_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(v.Str(p.sample_type(i).type()), kTypes[i][0]);
    EXPECT_EQ(v.Str(p.sample_type(i).unit()), kTypes[i][1]);
  }
  EXPECT_EQ(v.Str(p.default_sample_type()), "inuse_space");
  EXPECT_EQ(v.Str(p.period_type().type()), "space");
  EXPECT_EQ(v.Str(p.period_type().unit()), "bytes");
  EXPECT_EQ(p.period(), 524288);
  EXPECT_EQ(p.time_nanos(), 1700000000123456789);
  EXPECT_EQ(p.duration_nanos(), 42000000000);
  std::vector<std::string> comments;
  for (int64_t c : p.comment()) comments.push_back(v.Str(c));
  EXPECT_EQ(comments, (std::vector<std::string>{"assay heap profile", "a hand-made profile"}));

  // Values and stacks.
  ASSERT_EQ(p.sample_size(), 3);
  const int64_t want_values[3][4] = {{5, 500, 2, 200}, {7, 7000, 7, 7000}, {1, 1 << 20, 0, 0}};
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(p.sample(i).value_size(), 4);
    for (int k = 0; k < 4; ++k) EXPECT_EQ(p.sample(i).value(k), want_values[i][k]) << i << k;
  }
  const pb::Sample& s0 = p.sample(0);
  const pb::Sample& s1 = p.sample(1);
  const pb::Sample& s2 = p.sample(2);
  ASSERT_EQ(s0.location_id_size(), 3);
  ASSERT_EQ(s1.location_id_size(), 2);
  ASSERT_EQ(s2.location_id_size(), 1);
  // One location per distinct address: a, b and nowhere.
  EXPECT_EQ(p.location_size(), 3);
  EXPECT_EQ(s0.location_id(0), s0.location_id(2));
  EXPECT_EQ(s0.location_id(0), s1.location_id(1));
  EXPECT_EQ(s0.location_id(1), s1.location_id(0));
  EXPECT_NE(s0.location_id(0), s0.location_id(1));
  for (const pb::Location& l : p.location()) EXPECT_NE(l.id(), 0u);

  // A return address points after its call: locations hold ret - 1.
  const pb::Location* la = v.Location(s0.location_id(0));
  const pb::Location* lb = v.Location(s0.location_id(1));
  const pb::Location* ln = v.Location(s2.location_id(0));
  ASSERT_TRUE(la && lb && ln);
  EXPECT_EQ(la->address(), a - 1);
  EXPECT_EQ(lb->address(), b - 1);
  EXPECT_EQ(ln->address(), nowhere - 1);
  EXPECT_EQ(ln->mapping_id(), 0u) << "an address in no mapping got one";
  EXPECT_EQ(ln->line_size(), 0) << "an address in no mapping got a function";

  // The sites are this executable's: their mapping covers them, and the
  // symbol table names them.
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  exe[n] = '\0';
  for (const pb::Location* l : {la, lb}) {
    const pb::Mapping* m = v.Mapping(l->mapping_id());
    ASSERT_NE(m, nullptr) << "location 0x" << std::hex << l->address();
    EXPECT_LE(m->memory_start(), l->address());
    EXPECT_LT(l->address(), m->memory_limit());
    EXPECT_EQ(v.Str(m->filename()), exe);
  }
  ASSERT_GT(p.mapping_size(), 0);
  EXPECT_EQ(v.Str(p.mapping(0).filename()), exe) << "the first mapping is the main program's";
  for (const pb::Mapping& m : p.mapping()) {
    EXPECT_NE(m.id(), 0u);
    EXPECT_LT(m.memory_start(), m.memory_limit());
  }
  EXPECT_EQ(v.FunctionOf(la->id()), "assay_pprof_test_site_a");
  EXPECT_EQ(v.FunctionOf(lb->id()), "assay_pprof_test_site_b");
  EXPECT_EQ(p.function_size(), 2) << "one function per symbol, shared by its locations";

  // Labels: present where the sample has them, absent for the "none" values.
  EXPECT_EQ(v.Labels(s0),
            (std::map<std::string, std::string>{
                {"bytes", "100 bytes"}, {"thread", "4242"}, {"generation", "young"}}));
  EXPECT_EQ(v.Labels(s1), (std::map<std::string, std::string>{{"bytes", "1000 bytes"},
                                                              {"alignment", "64 bytes"},
                                                              {"batch_index", "3"},
                                                              {"generation", "old"},
                                                              {"cache", "objects_of_a_cache"}}));
  EXPECT_TRUE(v.Labels(s2).empty());
}

TEST_F(PprofBuilder, DefaultSampleTypeAndKindFollowTheData) {
  AssayProfileData d{};
  d.kind = "alloc";
  d.default_sample_type = 1;
  d.period = 1;
  pb::Profile p;
  ASSERT_NO_FATAL_FAILURE(WriteAndParse(d, &p));
  const View v{p};
  EXPECT_EQ(v.Str(p.default_sample_type()), "alloc_space");
  EXPECT_EQ(p.period(), 1);
  EXPECT_EQ(p.sample_size(), 0);
  EXPECT_EQ(p.location_size(), 0);
  ASSERT_EQ(p.comment_size(), 1);
  EXPECT_EQ(v.Str(p.comment(0)), "assay alloc profile");

  // Out of range: inuse_space.
  d.default_sample_type = 9;
  ASSERT_NO_FATAL_FAILURE(WriteAndParse(d, &p));
  EXPECT_EQ(View{p}.Str(p.default_sample_type()), "inuse_space");
}

TEST_F(PprofBuilder, AMissingDirectoryIsReportedNotWritten) {
  AssayProfileData d{};
  d.kind = "heap";
  d.period = 1;
  const std::string path = dir_ + "/no/such/dir/p.pb.gz";
  char err[512] = "";
  EXPECT_EQ(assay_pprof_write(&d, path.c_str(), err, sizeof(err)), ENOENT);
  EXPECT_NE(std::string(err).find(dir_ + "/no/such/dir/p.pb.gz"), std::string::npos) << err;
  EXPECT_TRUE(ListDir(dir_).empty());
}

}  // namespace
