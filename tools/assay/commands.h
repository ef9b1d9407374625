// The subcommands of `assay`, each defined in its own cmd_*.cc. main.cc
// dispatches on the name, prints help, and turns UsageError into exit 2 and
// Failure into exit 1 (args.h).
#pragma once

#include <string>
#include <vector>

namespace assay::cli {

struct Command {
  const char* name;
  const char* summary;  // one line for `assay --help`
  const char* usage;    // the synopsis lines, each starting "usage: " or spaces
  const char* help;     // the rest of `assay CMD --help`
  // Runs with the arguments after the command's name; returns the exit status.
  int (*run)(const std::vector<std::string>& args);
};

extern const Command kRunCommand;
extern const Command kTopCommand;
extern const Command kDiffCommand;
extern const Command kMergeCommand;

}  // namespace assay::cli
