// Command-line plumbing shared by the subcommands: the two kinds of error
// (a usage error exits 2, a failure exits 1), an option reader, and the
// parsers of sizes and counts.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace assay::cli {

// Bad command line: main prints "assay CMD: what", the command's usage, exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Something went wrong with a file or a program: main prints "assay CMD: what", exits 1.
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// -h or --help where a command reads options: main prints the command's help, exits 0.
struct HelpRequested {};

// Walks a command's arguments. Options take their value as `--opt V` or `--opt=V`.
class ArgReader {
 public:
  explicit ArgReader(std::vector<std::string> args) : args_(std::move(args)) {}

  bool Done() const { return pos_ >= args_.size(); }
  const std::string& Peek() const { return args_[pos_]; }
  std::string Next() { return args_[pos_++]; }
  // The arguments not consumed yet.
  std::vector<std::string> Rest() const;

  // True (and consumes it) if the current argument is exactly `name`.
  bool Flag(std::string_view name);
  // True if the current argument is `name` or `name=...`; consumes it and
  // its value (the next argument for the first form) into *value.
  bool Value(std::string_view name, std::string* value);
  // True if the current argument looks like an option (-x, --x), but not "-" or "--".
  bool AtOption() const;

 private:
  std::vector<std::string> args_;
  size_t pos_ = 0;
};

// True if `args` asks for help (-h or --help) before any "--" (for the
// commands whose other arguments are files).
bool WantsHelp(const std::vector<std::string>& args);

// A size: digits with an optional k/m/g suffix (powers of 1024), within [min, max].
int64_t ParseSize(std::string_view option, std::string_view text, int64_t min, int64_t max);
// A plain non-negative integer within [min, max].
int64_t ParseInt(std::string_view option, std::string_view text, int64_t min, int64_t max);

}  // namespace assay::cli
