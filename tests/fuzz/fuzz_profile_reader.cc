// fuzz_profile_reader: the `assay` command's profile reading and the reports
// built on it (top, diff, merge) on arbitrary files, under ASan and UBSan.
// Input: one mode byte, then the file. Mode bit 0 set: the rest is a raw
// Profile message that the harness gzips first, so the fuzzer mutates the
// protobuf (ids, indexes, counts) rather than the gzip stream; clear: the
// rest is the file as is (truncated or corrupt gzip). Bits 1-4 pick the
// report options.
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tools/assay/args.h"
#include "tools/assay/commands.h"
#include "tools/assay/profile_io.h"

namespace {

std::string g_dir;

void WriteInput(const std::string& path, const std::string& bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    perror("fuzz_profile_reader: write input");
    abort();
  }
  close(fd);
}

// Runs a command as main would; its errors are the expected outcome of most
// inputs, any other exception escapes and fails the run.
void Run(const assay::cli::Command& c, const std::vector<std::string>& args) {
  try {
    c.run(args);
  } catch (const assay::cli::Failure&) {
  } catch (const assay::cli::UsageError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/fuzz_profile_reader.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) abort();
  g_dir = tmpl;
  // The reports go to stdout: away with them, libFuzzer writes to stderr.
  const int null = open("/dev/null", O_WRONLY);
  dup2(null, 1);
  close(null);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (mode & 1) bytes = assay::cli::Gzip(bytes);
  const std::string path = g_dir + "/in.pb.gz";
  WriteInput(path, bytes);

  std::vector<std::string> top;
  if (mode & 2) top.push_back(mode & 4 ? "--inuse" : "--alloc");
  if (mode & 8) top.push_back("--objects");
  if (mode & 16) top.push_back("--cum");
  top.push_back("-n");
  top.push_back(mode & 32 ? "3" : "0");
  top.push_back(path);
  Run(assay::cli::kTopCommand, top);

  // A profile that reads back is also compared with and merged into itself.
  bool readable = true;
  try {
    assay::cli::ParseProfile(bytes, "input");
  } catch (const assay::cli::Failure&) {
    readable = false;
  }
  if (!readable) return 0;
  Run(assay::cli::kDiffCommand, {path, path});
  Run(assay::cli::kMergeCommand, {"-o", g_dir + "/merged.pb.gz", path, path});
  return 0;
}
