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

// What a CIE says about its FDEs: kept by a reader of many FDEs (the
// classifier reads up to 64 of an object, nearly all of one or two CIEs),
// so that each CIE is parsed once (its augmentation string and LEB128s were
// half of an FDE's reading).
struct Cie {
  const uint8_t* at = nullptr;  // the CIE record these fields are of
  const uint8_t* insns;         // its initial instructions [insns, end)
  const uint8_t* end;
  uint64_t code_align;
  int64_t data_align;
  uint64_t ra_reg;
  uint8_t fde_enc;  // the FDE pointer encoding ('R'), absptr without
  int addr_size;    // bytes of an address in that encoding
  bool z;           // augmentation data follow in each FDE
};

// Parses the FDE at fde and its CIE; false for a CIE, a terminator, 64-bit
// lengths or augmentations this reader does not know. With cie: the CIE is
// taken from *cie when cie->at is the FDE's, else parsed into it.
bool ParseFde(const uint8_t* fde, Fde* out, Cie* cie);
inline bool ParseFde(const uint8_t* fde, Fde* out) {
  Cie cie;
  return ParseFde(fde, out, &cie);
}

// One CFA instruction, decoded: the primary opcodes (advance_loc, offset,
// restore) folded into their extended forms, factored offsets scaled by the
// CIE's data alignment and advances by its code alignment. What a reader does
// with each is its own (eh_frame.cc classifies, cfa_row.cc runs them).
enum class CfaOpKind : uint8_t {
  kNop,              // nop, GNU_args_size
  kAdvance,          // advance_loc*: value bytes of code
  kSetLoc,           // set_loc (its address skipped)
  kOffset,           // reg saved at CFA + value
  kRestore,          // reg back to the CIE's rule
  kUndefined,        // reg
  kSameValue,        // reg
  kOtherRule,        // reg kept by register, val_offset or (val_)expression
  kRemember,         // remember_state
  kRestoreState,     // restore_state
  kDefCfa,           // CFA = reg + value
  kDefCfaRegister,   // CFA on reg, offset kept
  kDefCfaOffset,     // CFA offset = value, register kept
  kDefCfaExpression  // CFA by an expression
};
struct CfaOp {
  CfaOpKind kind;
  uint64_t reg;
  int64_t value;
};

// Decodes the instruction at p, of f's CIE or FDE, and moves p past it; false
// for an opcode this reader does not know. Always inlined: classifying an
// object decodes ~64 FDEs' instructions, and called it cost twice as much
// (fragment's three objects: 48 000 -> 107 000 instructions; 51 000 inlined).
__attribute__((always_inline)) inline bool NextCfaOp(const uint8_t*& p, const uint8_t* end,
                                                     const Fde& f, CfaOp* op) {
  const uint8_t code = *p++;
  const uint8_t low = code & 0x3f;
  *op = CfaOp{CfaOpKind::kNop, 0, 0};
  switch (code >> 6) {
    case 1:
      *op = CfaOp{CfaOpKind::kAdvance, 0, static_cast<int64_t>(low * f.code_align)};
      return true;
    case 2:
      *op = CfaOp{CfaOpKind::kOffset, low, static_cast<int64_t>(Uleb(p, end)) * f.data_align};
      return true;
    case 3:
      *op = CfaOp{CfaOpKind::kRestore, low, 0};
      return true;
    default:
      break;
  }
  switch (code) {
    case 0x00:  // nop
      return true;
    case 0x01:  // set_loc
      p += f.addr_size;
      op->kind = CfaOpKind::kSetLoc;
      return true;
    case 0x02:  // advance_loc1, 2, 4
    case 0x03:
    case 0x04: {
      const int bytes = code == 0x02 ? 1 : (code == 0x03 ? 2 : 4);
      *op = CfaOp{CfaOpKind::kAdvance, 0, static_cast<int64_t>(ReadU(p, bytes) * f.code_align)};
      return true;
    }
    case 0x05:  // offset_extended reg, factored offset
      op->kind = CfaOpKind::kOffset;
      op->reg = Uleb(p, end);
      op->value = static_cast<int64_t>(Uleb(p, end)) * f.data_align;
      return true;
    case 0x11:  // offset_extended_sf reg, signed factored offset
      op->kind = CfaOpKind::kOffset;
      op->reg = Uleb(p, end);
      op->value = Sleb(p, end) * f.data_align;
      return true;
    case 0x2f:  // GNU_negative_offset_extended
      op->kind = CfaOpKind::kOffset;
      op->reg = Uleb(p, end);
      op->value = -static_cast<int64_t>(Uleb(p, end)) * f.data_align;
      return true;
    case 0x06:  // restore_extended
      *op = CfaOp{CfaOpKind::kRestore, Uleb(p, end), 0};
      return true;
    case 0x07:
      *op = CfaOp{CfaOpKind::kUndefined, Uleb(p, end), 0};
      return true;
    case 0x08:
      *op = CfaOp{CfaOpKind::kSameValue, Uleb(p, end), 0};
      return true;
    case 0x09:  // register reg, reg2
    case 0x14:  // val_offset reg, offset
    case 0x15:  // val_offset_sf
      *op = CfaOp{CfaOpKind::kOtherRule, Uleb(p, end), 0};
      Uleb(p, end);
      return true;
    case 0x10:    // expression reg, block
    case 0x16: {  // val_expression reg, block
      *op = CfaOp{CfaOpKind::kOtherRule, Uleb(p, end), 0};
      const uint64_t n = Uleb(p, end);
      p += n;
      return true;
    }
    case 0x0a:
      op->kind = CfaOpKind::kRemember;
      return true;
    case 0x0b:
      op->kind = CfaOpKind::kRestoreState;
      return true;
    case 0x0c:  // def_cfa reg, offset
      op->kind = CfaOpKind::kDefCfa;
      op->reg = Uleb(p, end);
      op->value = static_cast<int64_t>(Uleb(p, end));
      return true;
    case 0x12:  // def_cfa_sf reg, signed factored offset
      op->kind = CfaOpKind::kDefCfa;
      op->reg = Uleb(p, end);
      op->value = Sleb(p, end) * f.data_align;
      return true;
    case 0x0d:
      *op = CfaOp{CfaOpKind::kDefCfaRegister, Uleb(p, end), 0};
      return true;
    case 0x0e:
      *op = CfaOp{CfaOpKind::kDefCfaOffset, 0, static_cast<int64_t>(Uleb(p, end))};
      return true;
    case 0x13:
      *op = CfaOp{CfaOpKind::kDefCfaOffset, 0, Sleb(p, end) * f.data_align};
      return true;
    case 0x0f: {  // def_cfa_expression block
      op->kind = CfaOpKind::kDefCfaExpression;
      const uint64_t n = Uleb(p, end);
      p += n;
      return true;
    }
    case 0x2e:  // GNU_args_size
      Uleb(p, end);
      return true;
    default:
      return false;
  }
}

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
