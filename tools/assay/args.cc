#include "tools/assay/args.h"

#include "base/parse_size.h"

namespace assay::cli {

std::vector<std::string> ArgReader::Rest() const {
  return std::vector<std::string>(args_.begin() + static_cast<std::ptrdiff_t>(pos_), args_.end());
}

bool ArgReader::Flag(std::string_view name) {
  if (Done() || Peek() != name) return false;
  ++pos_;
  return true;
}

bool ArgReader::Value(std::string_view name, std::string* value) {
  if (Done()) return false;
  const std::string& a = Peek();
  if (a == name) {
    if (pos_ + 1 >= args_.size()) throw UsageError("option " + a + " needs a value");
    *value = args_[pos_ + 1];
    pos_ += 2;
    return true;
  }
  if (a.size() > name.size() && a.compare(0, name.size(), name) == 0 && a[name.size()] == '=') {
    *value = a.substr(name.size() + 1);
    ++pos_;
    return true;
  }
  return false;
}

bool ArgReader::AtOption() const {
  if (Done()) return false;
  const std::string& a = Peek();
  return a.size() > 1 && a[0] == '-' && a != "--";
}

bool WantsHelp(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--") return false;
    if (a == "-h" || a == "--help") return true;
  }
  return false;
}

namespace {

// Digits, then (if suffixes) an optional k/m/g suffix; false if malformed or
// above 2^50.
bool ParseNumber(std::string_view text, bool suffixes, int64_t* out) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return false;  // no sign
  if (!suffixes && (text.back() < '0' || text.back() > '9')) return false;
  int64_t v = 0;
  if (!internal::ParseSize(text.data(), text.size(), &v) || v > (int64_t{1} << 50)) return false;
  *out = v;
  return true;
}

std::string Range(int64_t min, int64_t max) {
  return std::to_string(min) + " to " + std::to_string(max);
}

}  // namespace

int64_t ParseSize(std::string_view option, std::string_view text, int64_t min, int64_t max) {
  int64_t v = 0;
  if (!ParseNumber(text, true, &v)) {
    throw UsageError("bad value '" + std::string(text) + "' for " + std::string(option) +
                     " (expected bytes, with an optional k, m or g suffix)");
  }
  if (v < min || v > max) {
    throw UsageError("value '" + std::string(text) + "' for " + std::string(option) +
                     " is out of range (" + Range(min, max) + " bytes)");
  }
  return v;
}

int64_t ParseInt(std::string_view option, std::string_view text, int64_t min, int64_t max) {
  int64_t v = 0;
  if (!ParseNumber(text, false, &v) || v < min || v > max) {
    throw UsageError("bad value '" + std::string(text) + "' for " + std::string(option) +
                     " (expected an integer from " + Range(min, max) + ")");
  }
  return v;
}

}  // namespace assay::cli
