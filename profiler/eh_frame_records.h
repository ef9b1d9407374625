// The records of .eh_frame as eh_frame.cc and cfa_row.cc read them: LEB128
// and DW_EH_PE values, a CIE with one of its FDEs, and the sorted search
// table of PT_GNU_EH_FRAME (.eh_frame_hdr). Reads memory in place; never
// allocates. Private to profiler/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace assay::profiler::eh_frame {

// Inline: the instruction readers call them per byte or two (out of line,
// classifying an object cost 60% more).
inline uint64_t ReadU(const uint8_t*& p, int bytes) {
  uint64_t v = 0;
  std::memcpy(&v, p, bytes);
  p += bytes;
  return v;
}

inline uint64_t Uleb(const uint8_t*& p, const uint8_t* end) {
  uint64_t v = 0;
  int shift = 0;
  while (p < end) {
    const uint8_t b = *p++;
    if (shift < 64) v |= static_cast<uint64_t>(b & 0x7f) << shift;
    shift += 7;
    if ((b & 0x80) == 0) break;
  }
  return v;
}

inline int64_t Sleb(const uint8_t*& p, const uint8_t* end) {
  uint64_t v = 0;
  int shift = 0;
  uint8_t b = 0;
  while (p < end) {
    b = *p++;
    if (shift < 64) v |= static_cast<uint64_t>(b & 0x7f) << shift;
    shift += 7;
    if ((b & 0x80) == 0) break;
  }
  if (shift < 64 && (b & 0x40) != 0) v |= ~uint64_t{0} << shift;  // sign-extend
  return static_cast<int64_t>(v);
}

// Bytes of a DW_EH_PE-encoded value (the low nibble), or 0 if unsupported.
inline int EncodedSize(uint8_t enc) {
  switch (enc & 0x0f) {
    case 0x00:
      return 8;  // absptr
    case 0x02:
    case 0x0a:
      return 2;
    case 0x03:
    case 0x0b:
      return 4;
    case 0x04:
    case 0x0c:
      return 8;
    default:
      return 0;
  }
}

// An FDE and what its CIE says about it.
struct Fde {
  const uint8_t* cie_insns;  // the CIE's initial instructions [cie_insns, cie_end)
  const uint8_t* cie_end;
  const uint8_t* insns;  // the FDE's own [insns, end)
  const uint8_t* end;
  uintptr_t start;  // the code it covers, [start, start + range); both 0 when the
  uintptr_t range;  // encoding is neither absolute nor pc-relative
  uint64_t code_align;
  int64_t data_align;
  uint64_t ra_reg;  // the column of the return address (16 on x86-64)
  int addr_size;    // bytes of an encoded address (DW_CFA_set_loc)
};

// Parses the FDE at fde and its CIE; false for a CIE, a terminator, 64-bit
// lengths or augmentations this reader does not know.
bool ParseFde(const uint8_t* fde, Fde* out);

// The search table of an .eh_frame_hdr: count rows of (initial location,
// FDE), each two datarel sdata4 offsets from the header, sorted by location.
struct SearchTable {
  const uint8_t* hdr;
  const uint8_t* rows;
  uint32_t count;
};

// The table of hdr, if the header has the usual encodings (version 1,
// eh_frame_ptr of a known size, count udata4, table datarel sdata4).
bool OpenTable(const uint8_t* hdr, SearchTable* t);

// Row `row`'s FDE.
const uint8_t* FdeOfRow(const SearchTable& t, size_t row);

// The FDE of the last row whose initial location is <= pc (the only one that
// may cover pc); nullptr if the table is empty or starts above pc.
const uint8_t* FdeBefore(const SearchTable& t, uintptr_t pc);

}  // namespace assay::profiler::eh_frame
