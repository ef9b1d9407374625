// The one option grammar of ASSAY_OPTIONS, MALLOC_PROF and ASSAY_DEBUG:
// comma-separated `key` or `key=value` items, each key described by a constexpr
// OptionSpec (what it accepts, where its value goes, the form its error names),
// applied to a config struct by ParseOptionText without allocating.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <type_traits>

namespace assay::internal {

// A member of the config struct a table fills, by offset and type.
enum class FieldType : uint8_t { kNone, kBool, kInt, kInt64, kUint64, kChars };

struct OptionField {
  FieldType type = FieldType::kNone;
  uint32_t offset = 0;
  uint32_t size = 0;  // bytes; for kChars the buffer's capacity, NUL included
};

template <typename T>
constexpr OptionField MakeOptionField(size_t offset) {
  FieldType t = FieldType::kNone;
  if constexpr (std::is_same_v<T, bool>) {
    t = FieldType::kBool;
  } else if constexpr (std::is_same_v<T, int>) {
    t = FieldType::kInt;
  } else if constexpr (std::is_same_v<T, int64_t>) {
    t = FieldType::kInt64;
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    t = FieldType::kUint64;
  } else {
    static_assert(std::is_same_v<T, char[sizeof(T)]>, "bool, int, int64_t, uint64_t or char[N]");
    t = FieldType::kChars;
  }
  return {t, static_cast<uint32_t>(offset), static_cast<uint32_t>(sizeof(T))};
}

// The field `member` of `Struct`, typed from its declaration.
#define ASSAY_OPTION_FIELD(Struct, member) \
  ::assay::internal::MakeOptionField<decltype(Struct::member)>(offsetof(Struct, member))

// Which items name a key: a word that does not take the form it is given is
// an unknown item, except that a missing required value (kValue) is a bad one.
enum class OptionShape : uint8_t {
  kBare,       // `key` alone (a flag word)
  kValue,      // `key=value`; bare `key` is a bad value
  kValueOnly,  // `key=value`; bare `key` is not this key
  kEither,     // `key` or `key=value`
};

// How the text after '=' parses.
enum class OptionKind : uint8_t {
  kNone,    // takes no value
  kNumber,  // an integer with an optional k/m/g suffix (ParseSize), in [min, max]
  kString,  // copied into a char array, NUL-terminated; length >= min and < capacity
  kWord,    // one of `words`, exactly; stores its value
  kCustom,  // `parse` turns it into a number, or says it is bad
};

struct OptionWord {
  const char* word = nullptr;
  int64_t value = 0;
};

struct OptionSpec {
  const char* name = nullptr;
  OptionShape shape = OptionShape::kValue;
  OptionKind kind = OptionKind::kNone;
  OptionField field;  // where the value goes
  int64_t min = 0;    // kNumber: the range; kString: the shortest length
  int64_t max = 0;
  OptionWord words[3] = {};                                          // kWord, ended by a null word
  bool (*parse)(const char* s, size_t len, int64_t* out) = nullptr;  // kCustom
  OptionField on;    // set true whenever the key is accepted, with or without a value
  OptionField bare;  // set to bare_value when the key comes without a value
  int64_t bare_value = 0;
  const char* form = "";  // the accepted form, quoted by the error line

  // Quirks, chained onto the constructors below.
  // `key` alone is accepted too (setting `on`, and `f` to `v` if given).
  constexpr OptionSpec OrBare(OptionField f = {}, int64_t v = 0) const {
    OptionSpec s = *this;
    s.shape = OptionShape::kEither;
    s.bare = f;
    s.bare_value = v;
    return s;
  }
  // Also sets bool `f` whenever the key is accepted.
  constexpr OptionSpec Also(OptionField f) const {
    OptionSpec s = *this;
    s.on = f;
    return s;
  }
  // Bare `key` is not this key at all (reported as unknown, not as bad).
  constexpr OptionSpec OnlyWithValue() const {
    OptionSpec s = *this;
    s.shape = OptionShape::kValueOnly;
    return s;
  }
};

// `key=N`, N an integer in [min, max], k/m/g suffixes allowed.
constexpr OptionSpec NumberOption(const char* name, OptionField f, int64_t min, int64_t max,
                                  const char* form) {
  OptionSpec s;
  s.name = name;
  s.kind = OptionKind::kNumber;
  s.field = f;
  s.min = min;
  s.max = max;
  s.form = form;
  return s;
}
// `key=0` or `key=1` (parsed as a number, so `key=0k` is 0 too).
constexpr OptionSpec BoolOption(const char* name, OptionField f, const char* form = "0 or 1") {
  return NumberOption(name, f, 0, 1, form);
}
// `key` alone sets bool `f`.
constexpr OptionSpec FlagOption(const char* name, OptionField f) {
  OptionSpec s;
  s.name = name;
  s.shape = OptionShape::kBare;
  s.bare = f;
  s.bare_value = 1;
  return s;
}
// `key=TEXT` copied into char array `f` (at least `min_len` bytes, and shorter
// than the array).
constexpr OptionSpec StringOption(const char* name, OptionField f, int64_t min_len,
                                  const char* form) {
  OptionSpec s;
  s.name = name;
  s.kind = OptionKind::kString;
  s.field = f;
  s.min = min_len;
  s.form = form;
  return s;
}
// `key=WORD`, WORD one of up to three words, each storing its value.
constexpr OptionSpec WordOption(const char* name, OptionField f, OptionWord w0, OptionWord w1,
                                const char* form) {
  OptionSpec s;
  s.name = name;
  s.kind = OptionKind::kWord;
  s.field = f;
  s.words[0] = w0;
  s.words[1] = w1;
  s.form = form;
  return s;
}
// `key=TEXT`, TEXT turned into a number by `parse`.
constexpr OptionSpec CustomOption(const char* name, OptionField f,
                                  bool (*parse)(const char*, size_t, int64_t*), const char* form) {
  OptionSpec s;
  s.name = name;
  s.kind = OptionKind::kCustom;
  s.field = f;
  s.parse = parse;
  s.form = form;
  return s;
}

// One variable's table and the wording of its error lines:
//   assay: VAR: <unknown|bad> '<key, or the whole item>' (<note>); <outcome>
// where the note after an unknown key is `known` (or the table's keys when
// list_keys, or nothing), and after a bad value `expected` + the key's form.
struct OptionGrammar {
  const char* var;
  const OptionSpec* specs;
  size_t count;
  const char* unknown;   // "unknown key"
  const char* bad;       // "bad value for"
  const char* expected;  // "expected "
  const char* known;     // the note after an unknown key, or nullptr
  bool list_keys;        // the note after an unknown key is "keys: " and every key
  bool quote_item;       // quote the whole item (else only its key)
  size_t quote_max;      // bytes of the quote at most (0: no limit)
  const char* outcome;   // "keeping the default"
  bool stop_at_error;    // the first bad item ends the parse
};

// Whether a table is well formed (each kind's field has a type that holds it,
// every string key's minimum fits): for static_assert next to each table.
constexpr bool ValidOptionTable(const OptionSpec* specs, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    const OptionSpec& s = specs[i];
    const bool numeric = s.field.type != FieldType::kNone && s.field.type != FieldType::kChars;
    if (s.name == nullptr || s.form == nullptr) return false;
    if (s.on.type != FieldType::kNone && s.on.type != FieldType::kBool) return false;
    if (s.bare.type == FieldType::kChars) return false;
    if (s.shape == OptionShape::kBare && s.kind != OptionKind::kNone) return false;
    if (s.shape != OptionShape::kBare && s.kind == OptionKind::kNone) return false;
    switch (s.kind) {
      case OptionKind::kNone:
        break;
      case OptionKind::kNumber:
        if (!numeric || s.min > s.max) return false;
        if (s.field.type == FieldType::kBool && (s.min < 0 || s.max > 1)) return false;
        if (s.field.type == FieldType::kInt && (s.min < INT32_MIN || s.max > INT32_MAX)) {
          return false;
        }
        if (s.field.type == FieldType::kUint64 && s.min < 0) return false;
        break;
      case OptionKind::kString:
        if (s.field.type != FieldType::kChars || s.min < 0 || s.min >= s.field.size) return false;
        break;
      case OptionKind::kWord:
        if (!numeric || s.words[0].word == nullptr) return false;
        break;
      case OptionKind::kCustom:
        if (!numeric || s.parse == nullptr) return false;
        break;
    }
  }
  return true;
}

// Applies `text` (may be null) to the struct at `config` as `g` describes:
// empty items are skipped; each bad item gets one stderr line and leaves
// `config` as it was; the others apply. Returns the number of bad items.
// Does not allocate.
int ParseOptionText(const OptionGrammar& g, const char* text, void* config);

}  // namespace assay::internal
