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

// What the CFA instructions in [p, end) of f do with the CFA (eh_frame.h: Cfa).
Cfa ReadCfa(const uint8_t* p, const uint8_t* end, const Fde& f) {
  Cfa result = kCfaUntouched;
  CfaOp op;
  while (p < end) {
    if (!NextCfaOp(p, end, f, &op)) return kCfaUnknown;
    switch (op.kind) {
      case CfaOpKind::kDefCfa:
      case CfaOpKind::kDefCfaRegister:
        if (op.reg == 6) return kCfaOnRbp;
        result = kCfaMoved;
        break;
      case CfaOpKind::kDefCfaOffset:  // a push or a stack adjustment
        result = kCfaMoved;
        break;
      case CfaOpKind::kDefCfaExpression:
        return kCfaExpression;
      default:
        break;
    }
  }
  return result;
}

// The CIE last read and what its initial instructions do with the CFA.
struct CieSeen {
  Cie cie;
  Cfa initial = kCfaUnknown;
};

// Reads one FDE (its CIE's initial instructions, then its own); the CIE and
// its instructions' answer are reused from *seen while FDEs share it.
Cfa ReadFde(const uint8_t* fde, CieSeen* seen) {
  Fde f;
  const uint8_t* const was = seen->cie.at;
  if (!ParseFde(fde, &f, &seen->cie)) return kCfaUnknown;
  // The CIE's initial instructions set the CFA for every FDE of it (to
  // %rsp + 8 on x86-64: not a move).
  if (seen->cie.at != was) seen->initial = ReadCfa(f.cie_insns, f.cie_end, f);
  const Cfa initial = seen->initial;
  if (initial == kCfaOnRbp || initial == kCfaExpression || initial == kCfaUnknown) return initial;
  return ReadCfa(f.insns, f.end, f);
}

}  // namespace

Cfa CfaAt(const uint8_t* hdr, uintptr_t pc) {
  SearchTable t;
  if (!OpenTable(hdr, &t)) return kCfaUnknown;
  const uint8_t* fde = FdeBefore(t, pc);
  CieSeen seen;
  return fde == nullptr ? kCfaUnknown : ReadFde(fde, &seen);
}

bool Scan(const uint8_t* hdr, size_t permille, size_t* fdes, size_t* fp_fdes) {
  *fdes = *fp_fdes = 0;
  SearchTable t;
  if (!OpenTable(hdr, &t)) return false;
  const size_t step = t.count > kMaxScanned ? t.count / kMaxScanned : 1;
  const size_t rows = (t.count + step - 1) / step;
  CieSeen seen;
  for (size_t i = 0, left = rows; i < t.count; i += step) {
    const Cfa cfa = ReadFde(FdeOfRow(t, i), &seen);
    --left;
    // Frameless leaves and the PLT's stubs do not count.
    if (cfa == kCfaUnknown || cfa == kCfaUntouched || cfa == kCfaExpression) continue;
    ++*fdes;
    if (cfa == kCfaOnRbp) ++*fp_fdes;
    // Decided whatever the rows left hold: their FDEs all on %rbp would not
    // reach the share, or none of them would bring it below (libc, 0-13%,
    // is decided after about 20 of its 64).
    if ((*fp_fdes + left) * 1000 < (*fdes + left) * permille ||
        *fp_fdes * 1000 >= (*fdes + left) * permille) {
      break;
    }
  }
  return true;
}

}  // namespace assay::profiler::eh_frame
