#include "tools/assay/profile_io.h"

#include <errno.h>
#include <fcntl.h>
#include <google/protobuf/stubs/logging.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <unordered_set>

#include "pprof/profile_file.h"
#include "tools/assay/args.h"

namespace assay::cli {
namespace {

// A profile that decompresses to more than this is refused (pprof's own limit
// is the protobuf message limit of 2 GiB).
constexpr size_t kMaxRawBytes = size_t{1} << 31;

// Protobuf logs what it rejects on stderr; keep the last message to explain a
// failed parse in our one error line instead.
std::string g_protobuf_log;
void KeepProtobufLog(google::protobuf::LogLevel, const char*, int, const std::string& message) {
  g_protobuf_log = message;
}

[[noreturn]] void Fail(const std::string& name, const std::string& what) {
  throw Failure(name + ": " + what);
}

std::string ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail(path, std::string("cannot open: ") + strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    Fail(path, "is a directory, not a profile");
  }
  std::string data;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      close(fd);
      Fail(path, std::string("cannot read: ") + strerror(e));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > kMaxRawBytes) {
      close(fd);
      Fail(path, "larger than 2 GiB, not a profile assay reads");
    }
  }
  close(fd);
  return data;
}

std::string Describe(const std::string& data) {
  // The first bytes, printable ones as they are, to say what the file is instead.
  std::string s;
  for (size_t i = 0; i < data.size() && i < 8; ++i) {
    const unsigned char c = static_cast<unsigned char>(data[i]);
    if (c >= 0x20 && c < 0x7f) {
      s += static_cast<char>(c);
    } else {
      char hex[8];
      snprintf(hex, sizeof(hex), "\\x%02x", c);
      s += hex;
    }
  }
  return s;
}

// Checks the string indexes, ids and references of one profile.
class Validator {
 public:
  Validator(const pb::Profile& p, const std::string& name) : p_(p), name_(name) {}

  void Run() {
    if (p_.string_table_size() == 0 || !p_.string_table(0).empty())
      Bad("its string table does not start with the empty string");
    if (p_.sample_type_size() == 0) Bad("it has no sample types");
    for (const pb::ValueType& vt : p_.sample_type()) {
      Str(vt.type(), "sample type");
      Str(vt.unit(), "sample unit");
    }
    Str(p_.period_type().type(), "period type");
    Str(p_.period_type().unit(), "period unit");
    Str(p_.default_sample_type(), "default sample type");
    Str(p_.drop_frames(), "drop_frames");
    Str(p_.keep_frames(), "keep_frames");
    for (int64_t c : p_.comment()) Str(c, "comment");

    std::unordered_set<uint64_t> mappings, functions, locations;
    for (const pb::Mapping& m : p_.mapping()) {
      Id(m.id(), &mappings, "mapping");
      Str(m.filename(), "mapping file name");
      Str(m.build_id(), "mapping build id");
    }
    for (const pb::Function& f : p_.function()) {
      Id(f.id(), &functions, "function");
      Str(f.name(), "function name");
      Str(f.system_name(), "function system name");
      Str(f.filename(), "function file name");
    }
    for (const pb::Location& l : p_.location()) {
      Id(l.id(), &locations, "location");
      if (l.mapping_id() != 0 && mappings.count(l.mapping_id()) == 0)
        Bad("location " + std::to_string(l.id()) + " refers to a missing mapping " +
            std::to_string(l.mapping_id()));
      for (const pb::Line& line : l.line()) {
        if (line.function_id() != 0 && functions.count(line.function_id()) == 0)
          Bad("location " + std::to_string(l.id()) + " refers to a missing function " +
              std::to_string(line.function_id()));
      }
    }
    for (int i = 0; i < p_.sample_size(); ++i) {
      const pb::Sample& s = p_.sample(i);
      if (s.value_size() != p_.sample_type_size())
        Bad("sample " + std::to_string(i) + " has " + std::to_string(s.value_size()) +
            " values for " + std::to_string(p_.sample_type_size()) + " sample types");
      for (uint64_t id : s.location_id()) {
        if (locations.count(id) == 0)
          Bad("sample " + std::to_string(i) + " refers to a missing location " +
              std::to_string(id));
      }
      for (const pb::Label& l : s.label()) {
        Str(l.key(), "label key");
        Str(l.str(), "label value");
        Str(l.num_unit(), "label unit");
      }
    }
  }

 private:
  [[noreturn]] void Bad(const std::string& what) {
    Fail(name_, "not a valid pprof profile: " + what);
  }
  void Str(int64_t index, const char* what) {
    if (index < 0 || index >= p_.string_table_size())
      Bad(std::string(what) + " has string index " + std::to_string(index) + " of " +
          std::to_string(p_.string_table_size()));
  }
  void Id(uint64_t id, std::unordered_set<uint64_t>* seen, const char* what) {
    if (id == 0) Bad(std::string(what) + " with id 0");
    if (!seen->insert(id).second)
      Bad(std::string("two ") + what + "s with id " + std::to_string(id));
  }

  const pb::Profile& p_;
  const std::string& name_;
};

}  // namespace

std::string Gunzip(const std::string& gz, const std::string& name) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) Fail(name, "zlib inflateInit2 failed");
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  char buf[1 << 16];
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    const int rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
    if (out.size() > kMaxRawBytes) {
      inflateEnd(&z);
      Fail(name, "decompresses to more than 2 GiB, not a profile assay reads");
    }
    if (rc == Z_STREAM_END) {
      // Concatenated gzip members are one stream (as gunzip reads them).
      if (z.avail_in == 0) break;
      if (inflateReset(&z) != Z_OK) break;
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && z.avail_in == 0) {
      inflateEnd(&z);
      Fail(name, "truncated gzip data (the file ends inside the compressed stream)");
    }
    const std::string msg = z.msg != nullptr ? z.msg : ("zlib error " + std::to_string(rc));
    inflateEnd(&z);
    Fail(name, "corrupt gzip data: " + msg);
  }
  inflateEnd(&z);
  return out;
}

std::string Gzip(const std::string& raw) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw Failure("zlib deflateInit2 failed");
  std::string out(deflateBound(&z, raw.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw Failure("zlib deflate failed (" + std::to_string(rc) + ")");
  return out;
}

void ValidateProfile(const pb::Profile& p, const std::string& name) { Validator(p, name).Run(); }

pb::Profile ParseProfile(const std::string& gz, const std::string& name) {
  if (gz.empty()) Fail(name, "empty file, not a profile");
  if (gz.size() < 2 || static_cast<unsigned char>(gz[0]) != 0x1f ||
      static_cast<unsigned char>(gz[1]) != 0x8b) {
    Fail(name, "not gzip-compressed (starts with \"" + Describe(gz) +
                   "\"); a pprof profile is a gzipped protobuf");
  }
  const std::string raw = Gunzip(gz, name);
  pb::Profile p;
  g_protobuf_log.clear();
  google::protobuf::LogHandler* old = google::protobuf::SetLogHandler(KeepProtobufLog);
  const bool parsed = !raw.empty() && p.ParseFromString(raw);
  google::protobuf::SetLogHandler(old);
  if (!parsed && g_protobuf_log.find("UTF-8") != std::string::npos)
    Fail(name,
         "gzip data is not a pprof profile this reader accepts: a string in it is not "
         "valid UTF-8");
  if (!parsed)
    Fail(name, "gzip data is not a pprof profile (not a perftools.profiles.Profile protobuf)");
  ValidateProfile(p, name);
  return p;
}

pb::Profile ReadProfile(const std::string& path) { return ParseProfile(ReadFile(path), path); }

void WriteProfile(const pb::Profile& p, const std::string& path) {
  std::string raw;
  if (!p.SerializeToString(&raw)) throw Failure(path + ": protobuf serialization failed");
  const std::string gz = Gzip(raw);
  char err[600] = "";
  if (pprof::WriteFileReplacing(path.c_str(), gz.data(), gz.size(), pprof::kProfileFileMode, err,
                                sizeof(err)) != 0)
    throw Failure(err);
}

}  // namespace assay::cli
