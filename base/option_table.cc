// ParseOptionText (option_table.h): splits an option string into items, finds
// each item's OptionSpec, parses and stores its value, and writes the error
// line of a bad item. No allocation: it runs inside malloc's initialisation.
#include "base/option_table.h"

#include <string.h>

#include "base/os.h"
#include "base/parse_size.h"

namespace assay::internal {
namespace {

// Builds one stderr line in a buffer, so that a line is one write(2) unless
// it is longer than the buffer (a very long quoted key).
class Line {
 public:
  void Add(const char* s, size_t n) {
    while (n > 0) {
      if (len_ == sizeof(buf_)) Flush();
      const size_t k = n < sizeof(buf_) - len_ ? n : sizeof(buf_) - len_;
      memcpy(buf_ + len_, s, k);
      len_ += k;
      s += k;
      n -= k;
    }
  }
  void Add(const char* s) { Add(s, strlen(s)); }
  void Flush() {
    os::WriteStderr(buf_, len_);
    len_ = 0;
  }

 private:
  char buf_[512];
  size_t len_ = 0;
};

// The error line of a bad item; `spec` is null when the item names no key.
void Complain(const OptionGrammar& g, const char* item, size_t len, size_t key_len,
              const OptionSpec* spec) {
  size_t quote = g.quote_item ? len : key_len;
  if (g.quote_max != 0 && quote > g.quote_max) quote = g.quote_max;
  Line line;
  line.Add("assay: ");
  line.Add(g.var);
  line.Add(": ");
  line.Add(spec == nullptr ? g.unknown : g.bad);
  line.Add(" '");
  line.Add(item, quote);
  line.Add("'");
  if (spec != nullptr) {
    line.Add(" (");
    line.Add(g.expected);
    line.Add(spec->form);
    line.Add(")");
  } else if (g.list_keys) {
    line.Add(" (keys:");
    for (size_t i = 0; i < g.count; ++i) {
      line.Add(" ");
      line.Add(g.specs[i].name);
    }
    line.Add(")");
  } else if (g.known != nullptr) {
    line.Add(" (");
    line.Add(g.known);
    line.Add(")");
  }
  line.Add("; ");
  line.Add(g.outcome);
  line.Add("\n");
  line.Flush();
}

void Store(const OptionField& f, void* config, int64_t v) {
  char* at = static_cast<char*>(config) + f.offset;
  switch (f.type) {
    case FieldType::kBool:
      *reinterpret_cast<bool*>(at) = v != 0;
      break;
    case FieldType::kInt:
      *reinterpret_cast<int*>(at) = static_cast<int>(v);
      break;
    case FieldType::kInt64:
      *reinterpret_cast<int64_t*>(at) = v;
      break;
    case FieldType::kUint64:
      *reinterpret_cast<uint64_t*>(at) = static_cast<uint64_t>(v);
      break;
    case FieldType::kNone:
    case FieldType::kChars:
      break;
  }
}

bool Equals(const char* s, size_t len, const char* word) {
  return strlen(word) == len && memcmp(s, word, len) == 0;
}

// Parses a value of `spec`'s kind into *v; false if it is bad. Strings are
// only checked here (stored by the caller).
bool ParseValue(const OptionSpec& spec, const char* s, size_t len, int64_t* v) {
  switch (spec.kind) {
    case OptionKind::kNone:
      return false;
    case OptionKind::kNumber:
      return ParseSize(s, len, v) && *v >= spec.min && *v <= spec.max;
    case OptionKind::kString:
      return static_cast<int64_t>(len) >= spec.min && len < spec.field.size;
    case OptionKind::kWord:
      for (const OptionWord& w : spec.words) {
        if (w.word == nullptr) break;
        if (Equals(s, len, w.word)) {
          *v = w.value;
          return true;
        }
      }
      return false;
    case OptionKind::kCustom:
      return spec.parse(s, len, v);
  }
  return false;
}

// Applies one non-empty item; false (after its error line) if it is bad.
bool ApplyItem(const OptionGrammar& g, const char* item, size_t len, void* config) {
  const char* eq = static_cast<const char*>(memchr(item, '=', len));
  const size_t key_len = eq != nullptr ? static_cast<size_t>(eq - item) : len;
  const OptionSpec* spec = nullptr;
  for (size_t i = 0; i < g.count && spec == nullptr; ++i) {
    if (Equals(item, key_len, g.specs[i].name)) spec = &g.specs[i];
  }
  const bool bare = eq == nullptr;
  if (spec == nullptr || (!bare && spec->shape == OptionShape::kBare) ||
      (bare && spec->shape == OptionShape::kValueOnly)) {
    Complain(g, item, len, key_len, nullptr);
    return false;
  }
  if (bare && spec->shape == OptionShape::kValue) {
    Complain(g, item, len, key_len, spec);
    return false;
  }
  if (bare) {
    Store(spec->bare, config, spec->bare_value);
  } else {
    const char* value = eq + 1;
    const size_t value_len = len - key_len - 1;
    int64_t v = 0;
    if (!ParseValue(*spec, value, value_len, &v)) {
      Complain(g, item, len, key_len, spec);
      return false;
    }
    if (spec->kind == OptionKind::kString) {
      char* to = static_cast<char*>(config) + spec->field.offset;
      memcpy(to, value, value_len);
      to[value_len] = '\0';
    } else {
      Store(spec->field, config, v);
    }
  }
  Store(spec->on, config, 1);
  return true;
}

}  // namespace

ASSAY_STARTUP int ParseOptionText(const OptionGrammar& g, const char* text, void* config) {
  if (text == nullptr) return 0;
  int bad = 0;
  for (const char* p = text; *p != '\0';) {
    const char* end = strchr(p, ',');
    if (end == nullptr) end = p + strlen(p);
    if (end != p && !ApplyItem(g, p, static_cast<size_t>(end - p), config)) {
      ++bad;
      if (g.stop_at_error) break;
    }
    p = *end == ',' ? end + 1 : end;
  }
  return bad;
}

}  // namespace assay::internal
