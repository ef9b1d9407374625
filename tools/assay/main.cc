// `assay`: runs programs under the heap profiler and reads the profiles it
// writes, without Go. Dispatches to the subcommands (commands.h).
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "tools/assay/args.h"
#include "tools/assay/commands.h"

namespace {

using assay::cli::Command;

const Command* const kCommands[] = {&assay::cli::kRunCommand, &assay::cli::kTopCommand,
                                    &assay::cli::kDiffCommand, &assay::cli::kMergeCommand};

void PrintUsage(FILE* out) {
  fprintf(out,
          "usage: assay COMMAND [ARGS...]\n"
          "\n"
          "assay runs a program on the assay allocator with its sampling heap profiler\n"
          "on, and reads the pprof profiles it writes.\n"
          "\n"
          "commands:\n");
  for (const Command* c : kCommands) fprintf(out, "  %-6s  %s\n", c->name, c->summary);
  fprintf(out,
          "\n"
          "Run 'assay COMMAND --help' for a command's options. Example:\n"
          "  assay run --rate 64k -- ./server && assay top ./assay.<pid>.<seq>.heap.pb.gz\n");
}

const Command* Find(const std::string& name) {
  for (const Command* c : kCommands) {
    if (name == c->name) return c;
  }
  return nullptr;
}

void PrintCommandHelp(const Command& c) { printf("%s\n\n%s", c.usage, c.help); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "assay: no command given\n");
    PrintUsage(stderr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "-h" || name == "--help" || name == "help") {
    if (name == "help" && argc > 2) {
      if (const Command* c = Find(argv[2])) {
        PrintCommandHelp(*c);
        return 0;
      }
      fprintf(stderr, "assay: unknown command '%s'\n", argv[2]);
      PrintUsage(stderr);
      return 2;
    }
    PrintUsage(stdout);
    return 0;
  }
  const Command* c = Find(name);
  if (c == nullptr) {
    fprintf(stderr, "assay: unknown command '%s'\n", name.c_str());
    PrintUsage(stderr);
    return 2;
  }
  const std::vector<std::string> args(argv + 2, argv + argc);
  // `assay run` reads -h/--help only among its own options, not the program's.
  if (c != &assay::cli::kRunCommand && assay::cli::WantsHelp(args)) {
    PrintCommandHelp(*c);
    return 0;
  }
  try {
    const int rc = c->run(args);
    if (fflush(stdout) != 0) {
      fprintf(stderr, "assay %s: cannot write the output: %s\n", c->name, strerror(errno));
      return 1;
    }
    return rc;
  } catch (const assay::cli::HelpRequested&) {
    PrintCommandHelp(*c);
    return 0;
  } catch (const assay::cli::UsageError& e) {
    fprintf(stderr, "assay %s: %s\n%s\nRun 'assay %s --help' for details.\n", c->name, e.what(),
            c->usage, c->name);
    return 2;
  } catch (const assay::cli::Failure& e) {
    fprintf(stderr, "assay %s: %s\n", c->name, e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    fprintf(stderr, "assay %s: out of memory\n", c->name);
    return 1;
  } catch (const std::exception& e) {
    fprintf(stderr, "assay %s: unexpected error: %s\n", c->name, e.what());
    return 1;
  }
}
