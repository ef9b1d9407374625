#include "tools/assay/report.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <regex>
#include <unordered_map>

#include "tools/assay/args.h"

namespace assay::cli {
namespace {

const std::string kEmpty;

std::string Basename(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A compiled drop_frames/keep_frames pattern; absent if empty or not a regex
// std::regex understands (pprof's are RE2; the common subset is the same).
struct Pattern {
  bool valid = false;
  std::regex re;
  explicit Pattern(const std::string& text) {
    if (text.empty()) return;
    try {
      re = std::regex("(" + text + ")", std::regex::ECMAScript | std::regex::optimize);
      valid = true;
    } catch (const std::regex_error&) {
    }
  }
  // std::regex matches recursively: names longer than this are taken as not
  // matching rather than risking the stack (allocator frames have short names).
  static constexpr size_t kMaxMatched = 4096;
  bool Matches(const std::string& s) const {
    if (!valid || s.size() > kMaxMatched) return false;
    try {
      return std::regex_match(s, re);
    } catch (const std::regex_error&) {
      return false;
    }
  }
};

// Descending by the key, then by the other value, then by name.
template <typename Row, typename Key, typename Other>
void SortRows(std::vector<Row>* rows, Key key, Other other) {
  std::sort(rows->begin(), rows->end(), [&](const Row& a, const Row& b) {
    if (key(a) != key(b)) return key(a) > key(b);
    if (other(a) != other(b)) return other(a) > other(b);
    return a.frames < b.frames;
  });
}

}  // namespace

const std::string& StringAt(const pb::Profile& p, int64_t index) {
  return index >= 0 && index < p.string_table_size() ? p.string_table(static_cast<int>(index))
                                                     : kEmpty;
}

int FindSampleType(const pb::Profile& p, const std::string& type) {
  for (int i = 0; i < p.sample_type_size(); ++i) {
    if (StringAt(p, p.sample_type(i).type()) == type) return i;
  }
  return -1;
}

int DefaultSampleType(const pb::Profile& p) {
  if (p.default_sample_type() != 0) {
    const int i = FindSampleType(p, StringAt(p, p.default_sample_type()));
    if (i >= 0) return i;
  }
  return p.sample_type_size() - 1;
}

namespace {

SampleType TypeAt(const pb::Profile& p, int i) {
  return SampleType{i, StringAt(p, p.sample_type(i).type()), StringAt(p, p.sample_type(i).unit())};
}

std::string TypeList(const pb::Profile& p) {
  std::string s;
  for (const pb::ValueType& vt : p.sample_type()) {
    if (!s.empty()) s += ", ";
    s += StringAt(p, vt.type());
  }
  return s;
}

}  // namespace

SampleType ChooseSampleType(const pb::Profile& p, const ValueChoice& choice,
                            const std::string& name) {
  const int def = DefaultSampleType(p);
  if (choice.space == Space::kDefault && !choice.objects) return TypeAt(p, def);
  std::string space;
  if (choice.space == Space::kAlloc) {
    space = "alloc";
  } else if (choice.space == Space::kInuse) {
    space = "inuse";
  } else {
    // --objects alone: the default type's alloc/inuse half.
    const std::string& d = StringAt(p, p.sample_type(def).type());
    space = d.substr(0, d.find('_'));
  }
  const std::string wanted = space + (choice.objects ? "_objects" : "_space");
  const int i = FindSampleType(p, wanted);
  if (i < 0)
    throw Failure(name + ": the profile has no sample type " + wanted + " (it has: " + TypeList(p) +
                  ")");
  return TypeAt(p, i);
}

SampleType MatchSampleType(const pb::Profile& p, const SampleType& t, const std::string& name) {
  const int i = FindSampleType(p, t.type);
  if (i < 0)
    throw Failure(name + ": the profile has no sample type " + t.type + " (it has: " + TypeList(p) +
                  ")");
  return TypeAt(p, i);
}

std::string Comments(const pb::Profile& p) {
  std::string s;
  for (int64_t c : p.comment()) {
    if (!s.empty()) s += "; ";
    s += StringAt(p, c);
  }
  return s;
}

int64_t Total(const pb::Profile& p, int index) {
  int64_t total = 0;
  for (const pb::Sample& s : p.sample()) total += s.value(index);
  return total;
}

std::string SimplifyFunctionName(const std::string& name) {
  // Left to right, as pprof's regexp `\(anonymous namespace\)|operator\(\)|\(` finds them.
  static const std::string kReserved[] = {"(anonymous namespace)", "operator()"};
  size_t pos = 0;
  while (pos < name.size()) {
    bool reserved = false;
    for (const std::string& r : kReserved) {
      if (name.compare(pos, r.size(), r) == 0) {
        pos += r.size();
        reserved = true;
        break;
      }
    }
    if (reserved) continue;
    if (name[pos] == '(') return name.substr(0, pos);
    ++pos;
  }
  return name;
}

std::string NameWithSource(const std::string& name, const std::string& file, int64_t line) {
  if (file.empty()) return name;
  std::string s = name + " " + file;
  if (line > 0) s += ":" + std::to_string(line);
  return s;
}

StackNames::StackNames(const pb::Profile& p, FrameKey key) {
  std::unordered_map<std::string, uint32_t> index;
  auto intern = [&](const std::string& s, const std::string& function) {
    auto [it, inserted] = index.emplace(s, static_cast<uint32_t>(names_.size()));
    if (inserted) {
      names_.push_back(s);
      functions_.push_back(function);
    }
    return it->second;
  };
  std::unordered_map<uint64_t, const pb::Function*> functions;
  for (const pb::Function& f : p.function()) functions[f.id()] = &f;
  std::unordered_map<uint64_t, const pb::Mapping*> mappings;
  for (const pb::Mapping& m : p.mapping()) mappings[m.id()] = &m;

  // Frames of each location, innermost inlined frame first.
  std::unordered_map<uint64_t, std::vector<uint32_t>> frames;
  for (const pb::Location& l : p.location()) {
    std::vector<uint32_t>& f = frames[l.id()];
    for (const pb::Line& line : l.line()) {
      auto it = functions.find(line.function_id());
      if (it == functions.end()) continue;
      const std::string& n = StringAt(p, it->second->name());
      const std::string& sys = StringAt(p, it->second->system_name());
      if (n.empty() && sys.empty()) continue;
      const std::string& function = n.empty() ? sys : n;
      const std::string& file = StringAt(p, it->second->filename());
      switch (key) {
        case FrameKey::kFunction:
          f.push_back(intern(function, function));
          break;
        case FrameKey::kFunctionFile:
          f.push_back(intern(NameWithSource(function, file, it->second->start_line()), function));
          break;
        case FrameKey::kLine:
          f.push_back(intern(NameWithSource(function, file, line.line()), function));
          break;
      }
    }
    if (f.empty()) {
      auto m = mappings.find(l.mapping_id());
      const std::string file =
          m != mappings.end() ? Basename(StringAt(p, m->second->filename())) : std::string();
      if (!file.empty()) {
        f.push_back(intern("[" + file + "]", "[" + file + "]"));
      } else {
        char buf[32];
        snprintf(buf, sizeof(buf), "0x%" PRIx64, l.address());
        f.push_back(intern(buf, buf));
      }
    }
  }

  // drop_frames: the outermost matching frame below a non-matching one is
  // cut, with everything it called (pprof's Profile.Prune).
  const Pattern drop(StringAt(p, p.drop_frames()));
  const Pattern keep(StringAt(p, p.keep_frames()));
  std::vector<int8_t> dropped;  // per name: -1 unknown, 0 keep, 1 drop
  auto is_dropped = [&](uint32_t n) {
    if (n >= dropped.size()) dropped.resize(names_.size(), -1);
    if (dropped[n] < 0) {
      const std::string s = SimplifyFunctionName(functions_[n]);
      dropped[n] = drop.Matches(s) && !keep.Matches(s) ? 1 : 0;
    }
    return dropped[n] == 1;
  };

  stacks_.resize(static_cast<size_t>(p.sample_size()));
  for (int i = 0; i < p.sample_size(); ++i) {
    std::vector<uint32_t>& stack = stacks_[static_cast<size_t>(i)];
    for (uint64_t id : p.sample(i).location_id()) {
      const std::vector<uint32_t>& f = frames[id];
      stack.insert(stack.end(), f.begin(), f.end());
    }
    if (!drop.valid) continue;
    bool found_user = false;
    for (size_t k = stack.size(); k-- > 0;) {
      if (!is_dropped(stack[k])) {
        found_user = true;
      } else if (found_user) {
        stack.erase(stack.begin(), stack.begin() + static_cast<std::ptrdiff_t>(k) + 1);
        break;
      }
    }
  }
}

TopReport BuildTop(const pb::Profile& p, int type_index, bool by_cum, FrameKey key) {
  const StackNames names(p, key);
  std::unordered_map<uint32_t, FunctionRow> rows;
  std::vector<uint32_t> seen;  // the names already counted in cum for this sample
  TopReport r;
  for (int i = 0; i < p.sample_size(); ++i) {
    const int64_t v = p.sample(i).value(type_index);
    r.total += v;
    if (v == 0) continue;
    ++r.samples;
    const std::vector<uint32_t>& stack = names.Stack(i);
    if (stack.empty()) continue;
    rows[stack[0]].flat += v;
    seen.clear();
    for (uint32_t n : stack) {
      if (std::find(seen.begin(), seen.end(), n) != seen.end()) continue;  // recursion
      seen.push_back(n);
      rows[n].cum += v;
    }
  }
  r.rows.reserve(rows.size());
  for (auto& [n, row] : rows) {
    row.name = names.Name(n);
    r.rows.push_back(std::move(row));
  }
  std::sort(r.rows.begin(), r.rows.end(), [by_cum](const FunctionRow& a, const FunctionRow& b) {
    const int64_t ka = std::llabs(by_cum ? a.cum : a.flat),
                  kb = std::llabs(by_cum ? b.cum : b.flat);
    if (ka != kb) return ka > kb;
    const int64_t oa = std::llabs(by_cum ? a.flat : a.cum),
                  ob = std::llabs(by_cum ? b.flat : b.cum);
    if (oa != ob) return oa > ob;
    return a.name < b.name;
  });
  return r;
}

DiffReport BuildDiff(const pb::Profile& old_p, int old_index, const pb::Profile& new_p,
                     int new_index) {
  DiffReport r;
  std::map<std::vector<std::string>, DiffRow> functions, stacks;
  auto add = [&](const pb::Profile& p, int index, bool is_new) {
    const StackNames names(p);
    int64_t total = 0;
    for (int i = 0; i < p.sample_size(); ++i) {
      const int64_t v = p.sample(i).value(index);
      total += v;
      const std::vector<uint32_t>& stack = names.Stack(i);
      if (v == 0 || stack.empty()) continue;
      std::vector<std::string> frames;
      frames.reserve(stack.size());
      for (uint32_t n : stack) frames.push_back(names.Name(n));
      DiffRow& f = functions[{frames[0]}];
      DiffRow& s = stacks[frames];
      (is_new ? f.new_value : f.old_value) += v;
      (is_new ? s.new_value : s.old_value) += v;
    }
    (is_new ? r.new_total : r.old_total) = total;
  };
  add(old_p, old_index, false);
  add(new_p, new_index, true);
  for (auto* m : {&functions, &stacks}) {
    std::vector<DiffRow>& out = m == &functions ? r.functions : r.stacks;
    out.reserve(m->size());
    for (auto& [key, row] : *m) {
      row.frames = key;
      out.push_back(std::move(row));
    }
    SortRows(
        &out, [](const DiffRow& d) { return d.Delta(); },
        [](const DiffRow& d) { return d.new_value; });
  }
  return r;
}

}  // namespace assay::cli
