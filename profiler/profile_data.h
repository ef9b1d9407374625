// The snapshot of a profile, as the profiler core hands it to the pprof
// writer (pprof/pprof_writer.cc). Plain C layout: the writer may live in
// a separately loaded library (libassay_pprof.so), so nothing of the C++
// library crosses this line.
#pragma once

#include <stddef.h>
#include <stdint.h>

extern "C" {

// One sample: a stack and four values (alloc_objects, alloc_space,
// inuse_objects, inuse_space), with the labels of the blocks it stands for.
struct AssayProfileSample {
  uint32_t frame_offset;  // first frame in AssayProfileData::frames
  uint32_t depth;         // frames, innermost first (return addresses)
  int64_t values[4];
  int64_t requested_bytes;  // label "bytes" (-1: none)
  int64_t alignment;        // label "alignment" (0: none)
  int64_t thread_id;        // label "thread" (0: none)
  int64_t batch_index;      // label "batch_index" (-1: none)
  int32_t generation;       // label "generation": 0 none, 1 young, 2 old
  const char* cache;        // label "cache": the object cache's name (null: none)
};

struct AssayProfileData {
  const char* kind;         // "heap", "alloc", "peak" or "leak"
  int default_sample_type;  // index into the four values
  int64_t time_nanos;       // wall clock when taken
  int64_t duration_nanos;   // since profiling started (or the last reset)
  int64_t period;           // the sampling rate, bytes
  const AssayProfileSample* samples;
  size_t nsamples;
  const uintptr_t* frames;
  size_t nframes;
  const char* comment;  // one line for the profile's comments, or null
  unsigned file_mode;   // permission bits of the file written (0: 0600)
};

// Writes the profile gzip-compressed to `path` (pprof/profile_file.h: an
// unpredictable temporary file created exclusively beside it, renamed into
// place; a symlink at any name is replaced, never followed). Returns 0, or
// an errno value with a message in err.
typedef int (*AssayPprofWriteFn)(const AssayProfileData* data, const char* path, char* err,
                                 size_t errlen);
int assay_pprof_write(const AssayProfileData* data, const char* path, char* err, size_t errlen);

// Builds the same gzip-compressed bytes in memory and hands them to
// sink(arg, bytes, len) once (the bytes live only during the call; the sink
// returns 0 or an errno value). Returns 0, or an errno value with a message
// in err. Used where profiles are served instead of written (the HTTP
// endpoint, assay_profile_to_fd).
typedef int (*AssayPprofSinkFn)(void* arg, const void* bytes, size_t len);
typedef int (*AssayPprofSerializeFn)(const AssayProfileData* data, AssayPprofSinkFn sink, void* arg,
                                     char* err, size_t errlen);
int assay_pprof_serialize(const AssayProfileData* data, AssayPprofSinkFn sink, void* arg, char* err,
                          size_t errlen);

}  // extern "C"
