// The layout descriptor: where the allocator's and profiler's structures are
// and how they are laid out, exported as the symbol `assay_layout` so that a
// heap walker (tools/gdb/assay.py) can read a live process or a core file of
// a release build without debug info. Filled once at initialisation; a
// walker checks `magic` and `version`, so a layout change is detected, never
// misread. All fields are 64-bit: addresses, sizes and byte offsets, declared
// as `uint64_t a, b;` only: the build parses this struct for the walker's field
// list (tools/gdb/gen_layout_fields.py) and static_asserts it matches.
#pragma once

#include <cstdint>

extern "C" {

#define ASSAY_LAYOUT_MAGIC 0x4c59414c59415341ull /* "ASAYLAYL" */
#define ASSAY_LAYOUT_VERSION 6

struct AssayLayout {
  uint64_t magic;    // ASSAY_LAYOUT_MAGIC once filled
  uint64_t version;  // ASSAY_LAYOUT_VERSION
  uint64_t size;     // sizeof(AssayLayout)

  // Geometry.
  uint64_t segment_size, slice_size, slices_per_segment, page_size;
  uint64_t num_classes, max_small_size, max_large_size;

  // Size classes: an array of num_classes records (class 0 unused).
  uint64_t classes_addr, class_record_size, class_size_off;

  // Segments: a list from the page heap's head, linked by `next`.
  uint64_t segment_head_addr;  // address of the head pointer
  uint64_t seg_next_off, seg_free_mask_off, seg_spans_off;
  uint64_t span_size, span_free_list_off, span_bump_off, span_used_off, span_kind_off, span_cls_off,
      span_first_off, span_slices_off, span_sampled_off;
  uint64_t span_kind_small, span_kind_large, span_kind_sampled;

  // Central lists: [pools][num_classes] records, each with a transfer cache
  // of batches (linked lists through the blocks' first word).
  uint64_t central_addr, central_pools, central_record_size, central_nbatches_off,
      central_batches_off, batch_record_size, batch_head_off, batch_count_off;

  // Thread caches: a list from the registry's head, linked by `next`; each
  // has num_classes free lists (linked through the blocks' first word).
  uint64_t thread_cache_head_addr;
  uint64_t tc_lists_off, freelist_record_size, freelist_head_off, freelist_count_off, tc_next_off,
      tc_thread_id_off;

  // Huge blocks: an open-addressing table (ptr 0 = empty slot).
  uint64_t huge_table_addr, huge_capacity_addr;  // addresses of the table pointer and its capacity
  uint64_t huge_record_size, huge_ptr_off, huge_base_off, huge_map_size_off, huge_sampled_off;

  // Profiler: live tracking entries in sharded chained hash tables.
  uint64_t entry_shards_addr, entry_shard_count, entry_shard_size, entry_buckets_off,
      entry_nbuckets_off;
  uint64_t entry_address_off, entry_requested_off, entry_usable_off, entry_alignment_off,
      entry_points_off, entry_stack_off, entry_thread_off, entry_weight_objects_off,
      entry_weight_bytes_off, entry_next_off;
  uint64_t stack_depth_off, stack_frames_off;
  uint64_t sampling_rate_addr;  // address of the running rate (uint64)

  // Version 2.
  uint64_t profiler_session_addr;  // address of the running session pointer (0: profiling off)
  uint64_t central_batch_slots;    // batches a transfer cache holds
  // Freed huge mappings kept for reuse (counted in the mapped total).
  uint64_t huge_cache_addr, huge_cache_count_addr, huge_cache_record_size, huge_cache_base_off,
      huge_cache_size_off;
  // Version 3. Free-list links (alloc/free_link.h): the address of the
  // process's key (uint64; 0 read there: links are plain pointers), and the
  // shift: a hardened link stored in block `slot` decodes as
  // next = stored ^ (slot >> link_shift) ^ key.
  uint64_t link_key_addr, link_shift;
  // Version 4. Free pages of partly used small spans returned to the OS
  // (alloc/span_purge.h): a small or sampled span's 64-bit mask at
  // span_purged_off, bit i set while unit i is purged, where a unit is
  // max(page_size, slices * slice_size / span_purge_units) bytes. A carved
  // block overlapping a purged unit is free (on no list); its memory reads
  // as zero and is not worth reading.
  uint64_t span_purged_off, span_purge_units;
  // Version 4. A kLarge span whose byte at span_cached_off is 1 is a free
  // run in a thread's slice-run cache (alloc/large_cache.h), not a block.
  uint64_t span_cached_off;
  // Version 5. A thread cache's sampled-pool magazine: the address of a
  // SampledMagazine at tc_sampled_off (0: none), whose num_classes free lists
  // at sampled_lists_off have tc_lists_off's record layout (kSampled blocks).
  uint64_t tc_sampled_off, sampled_lists_off;
  // Version 6: an entry is 128 bytes; its thread is 4 bytes and its
  // alignment 1 byte at entry_alignment_off: log2 of the alignment, 0 for
  // the default.
  // Field widths: free_mask, huge and entry fields, addresses: 8 bytes
  // (entry thread: 4, entry alignment: 1); Span bump and used, FreeList
  // count, Batch count, class size, stack depth, nbatches: 4; span kind,
  // cls, first, slices, sampled, cached: 1; weights: double.
};

extern AssayLayout assay_layout;

}  // extern "C"
