#include "tools/assay/merge.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "tools/assay/args.h"
#include "tools/assay/report.h"

namespace assay::cli {
namespace {

std::string ValueTypeName(const pb::Profile& p, const pb::ValueType& vt) {
  return StringAt(p, vt.type()) + "/" + StringAt(p, vt.unit());
}

std::string SampleTypesOf(const pb::Profile& p) {
  std::string s;
  for (const pb::ValueType& vt : p.sample_type()) {
    if (!s.empty()) s += " ";
    s += ValueTypeName(p, vt);
  }
  return s;
}

void CheckCompatible(const pb::Profile& first, const std::string& first_name, const pb::Profile& p,
                     const std::string& name) {
  if (SampleTypesOf(first) != SampleTypesOf(p))
    throw Failure(name + ": cannot merge with " + first_name + ": sample types differ (" +
                  SampleTypesOf(p) + " vs " + SampleTypesOf(first) + ")");
  if (ValueTypeName(first, first.period_type()) != ValueTypeName(p, p.period_type()))
    throw Failure(name + ": cannot merge with " + first_name + ": period types differ (" +
                  ValueTypeName(p, p.period_type()) + " vs " +
                  ValueTypeName(first, first.period_type()) + ")");
}

// Appends a number to a key (keys are byte strings of fixed-width fields).
void Put(std::string* key, uint64_t v) {
  key->append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void Put(std::string* key, const std::string& s) {
  Put(key, static_cast<uint64_t>(s.size()));
  key->append(s);
}

class Merger {
 public:
  Merger() { Str(""); }

  void Add(const pb::Profile& in) {
    // Strings, functions and mappings of this input, by their input ids.
    std::unordered_map<uint64_t, uint64_t> function_ids, location_ids;
    struct MappingMap {
      uint64_t id;
      uint64_t rebase;  // added to addresses (mod 2^64)
    };
    std::unordered_map<uint64_t, MappingMap> mapping_ids;

    for (const pb::Mapping& m : in.mapping()) {
      const std::string& file = StringAt(in, m.filename());
      const std::string& build_id = StringAt(in, m.build_id());
      std::string key;
      if (!file.empty() || !build_id.empty()) {
        // As pprof: size rounded up to pages, offset, and the build id (else the file).
        uint64_t size = m.memory_limit() - m.memory_start();
        size = (size + 0xfff) & ~uint64_t{0xfff};
        key = "o";
        Put(&key, size);
        Put(&key, m.file_offset());
        Put(&key, build_id.empty() ? file : build_id);
      } else {
        key = "a";  // no file: only the very same range is the same mapping
        Put(&key, m.memory_start());
        Put(&key, m.memory_limit());
        Put(&key, m.file_offset());
      }
      auto it = mappings_.find(key);
      if (it == mappings_.end()) {
        pb::Mapping* om = out_.add_mapping();
        *om = m;
        om->set_id(static_cast<uint64_t>(out_.mapping_size()));
        om->set_filename(Str(file));
        om->set_build_id(Str(build_id));
        it = mappings_.emplace(key, om->id()).first;
      }
      pb::Mapping* om = out_.mutable_mapping(static_cast<int>(it->second - 1));
      om->set_has_functions(om->has_functions() || m.has_functions());
      om->set_has_filenames(om->has_filenames() || m.has_filenames());
      om->set_has_line_numbers(om->has_line_numbers() || m.has_line_numbers());
      om->set_has_inline_frames(om->has_inline_frames() || m.has_inline_frames());
      mapping_ids[m.id()] = MappingMap{it->second, om->memory_start() - m.memory_start()};
    }

    for (const pb::Function& f : in.function()) {
      const std::string& name = StringAt(in, f.name());
      const std::string& system_name = StringAt(in, f.system_name());
      const std::string& file = StringAt(in, f.filename());
      std::string key;
      Put(&key, name);
      Put(&key, system_name);
      Put(&key, file);
      Put(&key, static_cast<uint64_t>(f.start_line()));
      auto [it, inserted] = functions_.emplace(key, functions_.size() + 1);
      if (inserted) {
        pb::Function* of = out_.add_function();
        of->set_id(it->second);
        of->set_name(Str(name));
        of->set_system_name(Str(system_name));
        of->set_filename(Str(file));
        of->set_start_line(f.start_line());
      }
      function_ids[f.id()] = it->second;
    }

    for (const pb::Location& l : in.location()) {
      uint64_t mapping = 0, address = l.address();
      if (l.mapping_id() != 0) {
        const MappingMap& mm = mapping_ids.at(l.mapping_id());
        mapping = mm.id;
        address += mm.rebase;
      }
      std::string key;
      Put(&key, mapping);
      Put(&key, address);
      Put(&key, l.is_folded() ? 1 : 0);
      for (const pb::Line& line : l.line()) {
        Put(&key, line.function_id() != 0 ? function_ids.at(line.function_id()) : 0);
        Put(&key, static_cast<uint64_t>(line.line()));
      }
      auto [it, inserted] = locations_.emplace(key, locations_.size() + 1);
      if (inserted) {
        pb::Location* ol = out_.add_location();
        ol->set_id(it->second);
        ol->set_mapping_id(mapping);
        ol->set_address(address);
        ol->set_is_folded(l.is_folded());
        for (const pb::Line& line : l.line()) {
          pb::Line* ol_line = ol->add_line();
          ol_line->set_function_id(line.function_id() != 0 ? function_ids.at(line.function_id())
                                                           : 0);
          ol_line->set_line(line.line());
        }
      }
      location_ids[l.id()] = it->second;
    }

    std::vector<std::string> labels;
    for (const pb::Sample& s : in.sample()) {
      std::string key;
      for (uint64_t id : s.location_id()) Put(&key, location_ids.at(id));
      Put(&key, ~uint64_t{0});  // end of the stack
      labels.clear();
      for (const pb::Label& l : s.label()) {
        std::string lk;
        Put(&lk, StringAt(in, l.key()));
        Put(&lk, StringAt(in, l.str()));
        Put(&lk, static_cast<uint64_t>(l.num()));
        Put(&lk, StringAt(in, l.num_unit()));
        labels.push_back(std::move(lk));
      }
      std::sort(labels.begin(), labels.end());  // the same labels in another order are the same
      for (const std::string& lk : labels) key += lk;
      auto [it, inserted] = samples_.emplace(key, out_.sample_size());
      if (inserted) {
        pb::Sample* os = out_.add_sample();
        for (uint64_t id : s.location_id()) os->add_location_id(location_ids.at(id));
        for (int64_t v : s.value()) os->add_value(v);
        for (const pb::Label& l : s.label()) {
          pb::Label* ol = os->add_label();
          ol->set_key(Str(StringAt(in, l.key())));
          ol->set_str(Str(StringAt(in, l.str())));
          ol->set_num(l.num());
          ol->set_num_unit(Str(StringAt(in, l.num_unit())));
        }
      } else {
        pb::Sample* os = out_.mutable_sample(it->second);
        for (int v = 0; v < s.value_size(); ++v) os->set_value(v, os->value(v) + s.value(v));
      }
    }
  }

  // The header fields, as pprof's merge combines them.
  void Finish(const std::vector<pb::Profile>& ins) {
    const pb::Profile& first = ins[0];
    for (const pb::ValueType& vt : first.sample_type()) {
      pb::ValueType* o = out_.add_sample_type();
      o->set_type(Str(StringAt(first, vt.type())));
      o->set_unit(Str(StringAt(first, vt.unit())));
    }
    out_.mutable_period_type()->set_type(Str(StringAt(first, first.period_type().type())));
    out_.mutable_period_type()->set_unit(Str(StringAt(first, first.period_type().unit())));
    out_.set_drop_frames(Str(StringAt(first, first.drop_frames())));
    out_.set_keep_frames(Str(StringAt(first, first.keep_frames())));
    int64_t time = 0, duration = 0, period = 0;
    std::vector<std::string> comments;
    std::string default_type;
    for (const pb::Profile& p : ins) {
      if (time == 0 || (p.time_nanos() != 0 && p.time_nanos() < time)) time = p.time_nanos();
      duration += p.duration_nanos();
      period = std::max(period, p.period());
      for (int64_t c : p.comment()) {
        const std::string& s = StringAt(p, c);
        if (std::find(comments.begin(), comments.end(), s) == comments.end()) comments.push_back(s);
      }
      if (default_type.empty()) default_type = StringAt(p, p.default_sample_type());
    }
    out_.set_time_nanos(time);
    out_.set_duration_nanos(duration);
    out_.set_period(period);
    comments.push_back("assay merge of " + std::to_string(ins.size()) + " profiles");
    for (const std::string& c : comments) out_.add_comment(Str(c));
    out_.set_default_sample_type(default_type.empty() ? 0 : Str(default_type));
  }

  pb::Profile& out() { return out_; }

 private:
  int64_t Str(const std::string& s) {
    auto [it, inserted] = strings_.emplace(s, out_.string_table_size());
    if (inserted) out_.add_string_table(s);
    return it->second;
  }

  pb::Profile out_;
  std::unordered_map<std::string, int64_t> strings_;
  std::unordered_map<std::string, uint64_t> mappings_;   // key -> output id
  std::unordered_map<std::string, uint64_t> functions_;  // key -> output id
  std::unordered_map<std::string, uint64_t> locations_;  // key -> output id
  std::unordered_map<std::string, int> samples_;         // key -> output index
};

}  // namespace

pb::Profile MergeProfiles(const std::vector<pb::Profile>& profiles,
                          const std::vector<std::string>& names) {
  if (profiles.empty()) throw Failure("no profiles to merge");
  for (size_t i = 1; i < profiles.size(); ++i)
    CheckCompatible(profiles[0], names[0], profiles[i], names[i]);
  Merger m;
  for (const pb::Profile& p : profiles) m.Add(p);
  m.Finish(profiles);
  return std::move(m.out());
}

}  // namespace assay::cli
