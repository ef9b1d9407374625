// Classifying code by its .eh_frame (eh_frame.h): what the CFA instructions
// of its FDEs do with the CFA (the records: eh_frame_records.h).
#include "profiler/eh_frame.h"

#include "profiler/eh_frame_records.h"

namespace assay::profiler::eh_frame {
namespace {

// FDEs read per object at most, evenly spaced over its table: enough to
// tell 50% from 7% (reading all of libc, libstdc++ and the rest took 4.6 M
// instructions at the first sample; 64 of each, about 30 000 each).
constexpr size_t kMaxScanned = 64;

// What the CFA instructions in [p, end) do with the CFA (eh_frame.h: Cfa).
Cfa ReadCfa(const uint8_t* p, const uint8_t* end, int addr_size) {
  Cfa result = kCfaUntouched;
  while (p < end) {
    const uint8_t op = *p++;
    switch (op >> 6) {
      case 1:
        continue;  // advance_loc
      case 2:
        Uleb(p, end);
        continue;  // offset
      case 3:
        continue;  // restore
      default:
        break;
    }
    switch (op) {
      case 0x00:
      case 0x0a:
      case 0x0b:
        break;  // nop, remember, restore_state
      case 0x01:
        p += addr_size;
        break;  // set_loc
      case 0x02:
        p += 1;
        break;
      case 0x03:
        p += 2;
        break;
      case 0x04:
        p += 4;
        break;
      case 0x06:  // restore_extended, undefined, same_value, GNU_args_size
      case 0x07:
      case 0x08:
      case 0x2e:
        Uleb(p, end);
        break;
      case 0x0e:  // def_cfa_offset(_sf): a push or a stack adjustment
      case 0x13:
        Uleb(p, end);
        result = kCfaMoved;
        break;
      case 0x05:
      case 0x09:
      case 0x11:
      case 0x14:
      case 0x15:
      case 0x2f:
        Uleb(p, end);
        Uleb(p, end);
        break;
      case 0x0c:
      case 0x12:  // def_cfa(_sf) reg, offset
        if (Uleb(p, end) == 6) return kCfaOnRbp;
        Uleb(p, end);
        result = kCfaMoved;
        break;
      case 0x0d:  // def_cfa_register
        if (Uleb(p, end) == 6) return kCfaOnRbp;
        result = kCfaMoved;
        break;
      case 0x0f:  // def_cfa_expression block
        return kCfaExpression;
      case 0x10:
      case 0x16: {  // (val_)expression reg, block
        Uleb(p, end);
        const uint64_t n = Uleb(p, end);
        p += n;
        break;
      }
      default:
        return kCfaUnknown;
    }
  }
  return result;
}

// Reads one FDE (its CIE's initial instructions, then its own).
Cfa ReadFde(const uint8_t* fde) {
  Fde f;
  if (!ParseFde(fde, &f)) return kCfaUnknown;
  // The CIE's initial instructions set the CFA for every FDE of it (to
  // %rsp + 8 on x86-64: not a move).
  const Cfa initial = ReadCfa(f.cie_insns, f.cie_end, f.addr_size);
  if (initial == kCfaOnRbp || initial == kCfaExpression || initial == kCfaUnknown) return initial;
  return ReadCfa(f.insns, f.end, f.addr_size);
}

}  // namespace

Cfa CfaAt(const uint8_t* hdr, uintptr_t pc) {
  SearchTable t;
  if (!OpenTable(hdr, &t)) return kCfaUnknown;
  const uint8_t* fde = FdeBefore(t, pc);
  return fde == nullptr ? kCfaUnknown : ReadFde(fde);
}

bool Scan(const uint8_t* hdr, size_t* fdes, size_t* fp_fdes) {
  *fdes = *fp_fdes = 0;
  SearchTable t;
  if (!OpenTable(hdr, &t)) return false;
  const size_t step = t.count > kMaxScanned ? t.count / kMaxScanned : 1;
  for (size_t i = 0; i < t.count; i += step) {
    const Cfa cfa = ReadFde(FdeOfRow(t, i));
    // Frameless leaves and the PLT's stubs do not count.
    if (cfa == kCfaUnknown || cfa == kCfaUntouched || cfa == kCfaExpression) continue;
    ++*fdes;
    if (cfa == kCfaOnRbp) ++*fp_fdes;
  }
  return true;
}

}  // namespace assay::profiler::eh_frame
