// The pprof writer: turns a profile snapshot (profile_data.h) into pprof's
// protobuf with the generated classes of proto/profile.proto, gzips it with
// zlib and writes it with the profile-file writer (profile_file.h), or
// hands the bytes to a caller's sink (the HTTP endpoint, assay_profile_to_fd).
// Frames are named with source files, lines and inlined calls where DWARF is
// found (source_lines.h).
// Runs with the profiler's sampling suspended on this thread.
#include <errno.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "pprof/profile_file.h"
#include "pprof/source_lines.h"
#include "profiler/profile_data.h"
#include "proto/profile.pb.h"

namespace assay::pprof {
namespace {

namespace pb = perftools::profiles;

class StringTable {
 public:
  explicit StringTable(pb::Profile* p) : profile_(p) { Index(""); }
  int64_t Index(const std::string& s) {
    auto [it, inserted] = index_.emplace(s, static_cast<int64_t>(index_.size()));
    if (inserted) profile_->add_string_table(s);
    return it->second;
  }

 private:
  pb::Profile* profile_;
  std::unordered_map<std::string, int64_t> index_;
};

void AddLabel(pb::Sample* s, StringTable& st, const char* key, int64_t num, const char* unit) {
  pb::Label* l = s->add_label();
  l->set_key(st.Index(key));
  l->set_num(num);
  if (unit != nullptr) l->set_num_unit(st.Index(unit));
}

void AddLabel(pb::Sample* s, StringTable& st, const char* key, const char* str) {
  pb::Label* l = s->add_label();
  l->set_key(st.Index(key));
  l->set_str(st.Index(str));
}

void BuildProfile(const AssayProfileData& d, pb::Profile* p) {
  StringTable st(p);
  static const char* const kTypes[4][2] = {{"alloc_objects", "count"},
                                           {"alloc_space", "bytes"},
                                           {"inuse_objects", "count"},
                                           {"inuse_space", "bytes"}};
  for (const auto& t : kTypes) {
    pb::ValueType* vt = p->add_sample_type();
    vt->set_type(st.Index(t[0]));
    vt->set_unit(st.Index(t[1]));
  }
  const int def =
      d.default_sample_type >= 0 && d.default_sample_type < 4 ? d.default_sample_type : 3;
  p->set_default_sample_type(st.Index(kTypes[def][0]));
  p->mutable_period_type()->set_type(st.Index("space"));
  p->mutable_period_type()->set_unit(st.Index("bytes"));
  p->set_period(d.period);
  p->set_time_nanos(d.time_nanos);
  p->set_duration_nanos(d.duration_nanos);
  // Frames are already cut at the allocation site; these would only hide
  // the allocator if a stack were captured some other way.
  p->set_drop_frames(st.Index(
      "(malloc|calloc|realloc|reallocarray|free|memalign|aligned_alloc|posix_memalign|valloc|"
      "pvalloc|operator new.*|operator delete.*|assay_comalloc|assay::internal::.*|"
      "assay::profiler::.*)"));
  p->add_comment(st.Index(std::string("assay ") + d.kind + " profile"));
  if (d.comment != nullptr) p->add_comment(st.Index(d.comment));

  ScopedSourceSymbolizer symbolizer;
  if (symbolizer.get() == nullptr) throw std::runtime_error("symbolizer re-entered");
  const std::vector<ObjectMapping>& mappings = symbolizer->Mappings();
  for (size_t i = 0; i < mappings.size(); ++i) {
    const ObjectMapping& m = mappings[i];
    pb::Mapping* pm = p->add_mapping();
    pm->set_id(i + 1);
    pm->set_memory_start(m.start);
    pm->set_memory_limit(m.limit);
    pm->set_file_offset(m.file_offset);
    pm->set_filename(st.Index(m.file));
    pm->set_build_id(st.Index(m.build_id));
  }
  // Per mapping, how many of its locations were named and how many were
  // resolved from DWARF. The has_* flags say what the profile holds, so that
  // pprof symbolizes a mapping again (from its file or build id) only where
  // it lacks something: a mapping whose DWARF was read has files, lines and
  // inline frames (a location outside every unit, such as _start, has no
  // source to show); without DWARF it has functions only if every location
  // was named.
  struct Resolution {
    size_t locations = 0, named = 0, dwarf = 0;
  };
  std::vector<Resolution> resolution(mappings.size());
  std::unordered_map<uintptr_t, uint64_t> location_ids;    // by address
  std::unordered_map<std::string, uint64_t> function_ids;  // by names and file
  auto location_of = [&](uintptr_t ret) -> uint64_t {
    // A return address points after the call; the call itself is one byte back.
    const uintptr_t pc = ret - 1;
    auto it = location_ids.find(pc);
    if (it != location_ids.end()) return it->second;
    const uint64_t id = location_ids.size() + 1;
    location_ids.emplace(pc, id);
    pb::Location* loc = p->add_location();
    loc->set_id(id);
    loc->set_address(pc);
    const int mapping = symbolizer->MappingOf(pc);
    if (mapping >= 0) loc->set_mapping_id(static_cast<uint64_t>(mapping) + 1);
    const PcSource& src = symbolizer->Lookup(pc);
    bool all_named = !src.frames.empty();
    for (const SourceFrame& f : src.frames) {  // innermost first, as pprof's lines are
      std::string key = *f.system_name;
      key.append(1, '\0').append(*f.name).append(1, '\0').append(*f.file);
      auto [fit, inserted] = function_ids.emplace(std::move(key), function_ids.size() + 1);
      if (inserted) {
        pb::Function* pf = p->add_function();
        pf->set_id(fit->second);
        pf->set_name(st.Index(*f.name));
        pf->set_system_name(st.Index(*f.system_name));
        pf->set_filename(st.Index(*f.file));
        pf->set_start_line(f.start_line);
      }
      pb::Line* line = loc->add_line();
      line->set_function_id(fit->second);
      line->set_line(f.line);
      all_named = all_named && !f.name->empty();
    }
    if (mapping >= 0) {
      Resolution& r = resolution[static_cast<size_t>(mapping)];
      ++r.locations;
      r.named += all_named;
      r.dwarf += src.dwarf;
    }
    return id;
  };

  for (size_t i = 0; i < d.nsamples; ++i) {
    const AssayProfileSample& s = d.samples[i];
    pb::Sample* ps = p->add_sample();
    for (uint32_t f = 0; f < s.depth; ++f)
      ps->add_location_id(location_of(d.frames[s.frame_offset + f]));
    for (int64_t v : s.values) ps->add_value(v);
    if (s.requested_bytes >= 0) AddLabel(ps, st, "bytes", s.requested_bytes, "bytes");
    if (s.alignment > 0) AddLabel(ps, st, "alignment", s.alignment, "bytes");
    if (s.thread_id > 0) AddLabel(ps, st, "thread", s.thread_id, nullptr);
    if (s.batch_index >= 0) AddLabel(ps, st, "batch_index", s.batch_index, nullptr);
    if (s.generation == 1) AddLabel(ps, st, "generation", "young");
    if (s.generation == 2) AddLabel(ps, st, "generation", "old");
    if (s.cache != nullptr) AddLabel(ps, st, "cache", s.cache);
  }
  for (size_t i = 0; i < resolution.size(); ++i) {
    const Resolution& r = resolution[i];
    pb::Mapping* pm = p->mutable_mapping(static_cast<int>(i));
    const bool dwarf = r.dwarf > 0;
    pm->set_has_functions(dwarf || (r.locations > 0 && r.named == r.locations));
    pm->set_has_filenames(dwarf);
    pm->set_has_line_numbers(dwarf);
    pm->set_has_inline_frames(dwarf);
  }
}

int Gzip(const std::string& in, std::string* out, char* err, size_t errlen) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    snprintf(err, errlen, "zlib deflateInit2 failed");
    return ENOMEM;
  }
  out->resize(deflateBound(&z, in.size()) + 32);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out->data());
  z.avail_out = static_cast<uInt>(out->size());
  const int rc = deflate(&z, Z_FINISH);
  out->resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) {
    snprintf(err, errlen, "zlib deflate failed (%d)", rc);
    return EIO;
  }
  return 0;
}

}  // namespace
}  // namespace assay::pprof

namespace assay::pprof {
namespace {

// The profile as gzipped pprof bytes; 0 or an errno value with err set.
int Serialize(const AssayProfileData* data, std::string* gz, char* err, size_t errlen) {
  try {
    perftools::profiles::Profile profile;
    BuildProfile(*data, &profile);
    std::string raw;
    if (!profile.SerializeToString(&raw)) {
      snprintf(err, errlen, "protobuf serialization failed");
      return EIO;
    }
    return Gzip(raw, gz, err, errlen);
  } catch (const std::bad_alloc&) {
    snprintf(err, errlen, "out of memory while building the profile");
    return ENOMEM;
  } catch (...) {
    snprintf(err, errlen, "unexpected error while building the profile");
    return EIO;
  }
}

}  // namespace
}  // namespace assay::pprof

extern "C" __attribute__((visibility("default"))) int assay_pprof_write(
    const AssayProfileData* data, const char* path, char* err, size_t errlen) {
  std::string gz;
  const int rc = assay::pprof::Serialize(data, &gz, err, errlen);
  if (rc != 0) return rc;
  const mode_t mode = data->file_mode != 0 ? data->file_mode : assay::pprof::kProfileFileMode;
  return assay::pprof::WriteFileReplacing(path, gz.data(), gz.size(), mode, err, errlen);
}

extern "C" __attribute__((visibility("default"))) int assay_pprof_serialize(
    const AssayProfileData* data, AssayPprofSinkFn sink, void* arg, char* err, size_t errlen) {
  std::string gz;
  const int rc = assay::pprof::Serialize(data, &gz, err, errlen);
  if (rc != 0) return rc;
  const int sunk = sink(arg, gz.data(), gz.size());
  if (sunk != 0) snprintf(err, errlen, "the profile's bytes were not taken (%s)", strerror(sunk));
  return sunk;
}
