// Reading .eh_frame (eh_frame.h): the CIE and FDE records, their CFA
// instructions, and the sorted search table of PT_GNU_EH_FRAME.
#include "profiler/eh_frame.h"

#include <cstring>

namespace assay::profiler::eh_frame {
namespace {

// FDEs read per object at most, evenly spaced over its table: enough to
// tell 50% from 7% (reading all of libc, libstdc++ and the rest took 4.6 M
// instructions at the first sample; 64 of each, about 30 000 each).
constexpr size_t kMaxScanned = 64;

uint64_t ReadU(const uint8_t*& p, int bytes) {
  uint64_t v = 0;
  std::memcpy(&v, p, bytes);
  p += bytes;
  return v;
}

uint64_t Uleb(const uint8_t*& p, const uint8_t* end) {
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

// Bytes of a DW_EH_PE-encoded value (the low nibble), or 0 if unsupported.
int EncodedSize(uint8_t enc) {
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
  const uint8_t* p = fde;
  const uint32_t len = static_cast<uint32_t>(ReadU(p, 4));
  if (len == 0 || len == 0xffffffffu) return kCfaUnknown;
  const uint8_t* end = p + len;
  const uint8_t* id_at = p;
  const uint32_t cie_off = static_cast<uint32_t>(ReadU(p, 4));
  if (cie_off == 0) return kCfaUnknown;  // a CIE, not an FDE
  const uint8_t* c = id_at - cie_off;
  const uint32_t clen = static_cast<uint32_t>(ReadU(c, 4));
  if (clen == 0 || clen == 0xffffffffu) return kCfaUnknown;
  const uint8_t* cend = c + clen;
  if (ReadU(c, 4) != 0) return kCfaUnknown;
  const uint8_t version = *c++;
  const char* aug = reinterpret_cast<const char*>(c);
  c += std::strlen(aug) + 1;
  Uleb(c, cend);  // code alignment
  Uleb(c, cend);  // data alignment (sleb: only skipped)
  if (version == 1)
    c++;
  else
    Uleb(c, cend);
  uint8_t fde_enc = 0;  // absptr
  if (aug[0] == 'z') {
    const uint64_t alen = Uleb(c, cend);
    const uint8_t* a = c;
    for (const char* q = aug + 1; *q != '\0'; ++q) {
      if (*q == 'R') {
        fde_enc = *a++;
      } else if (*q == 'L') {
        a++;
      } else if (*q == 'P') {
        const uint8_t penc = *a++;
        const int sz = EncodedSize(penc);
        if (sz == 0) return kCfaUnknown;
        a += sz;
      } else if (*q != 'S') {
        return kCfaUnknown;
      }
    }
    c += alen;
  } else if (aug[0] != '\0') {
    return kCfaUnknown;
  }
  const int sz = EncodedSize(fde_enc);
  if (sz == 0 || c > cend) return kCfaUnknown;
  // The CIE's initial instructions set the CFA for every FDE of it (to
  // %rsp + 8 on x86-64: not a move).
  const Cfa initial = ReadCfa(c, cend, sz);
  if (initial == kCfaOnRbp || initial == kCfaExpression || initial == kCfaUnknown) return initial;
  p += 2 * sz;  // initial location, address range
  if (aug[0] == 'z') {
    const uint64_t alen = Uleb(p, end);
    p += alen;
  }
  if (p > end) return kCfaUnknown;
  return ReadCfa(p, end, sz);
}

// The search table of an .eh_frame_hdr: count rows of (initial location,
// FDE), each two datarel sdata4 offsets from the header, sorted by location.
struct SearchTable {
  const uint8_t* rows;
  uint32_t count;
};

// The table of hdr, if the header has the usual encodings (version 1,
// eh_frame_ptr of a known size, count udata4, table datarel sdata4).
bool OpenTable(const uint8_t* hdr, SearchTable* t) {
  if (hdr[0] != 1 || hdr[2] != 0x03 || hdr[3] != 0x3b) return false;
  const int ptr_size = EncodedSize(hdr[1]);
  if (ptr_size == 0) return false;
  const uint8_t* p = hdr + 4 + ptr_size;
  t->count = static_cast<uint32_t>(ReadU(p, 4));
  t->rows = p;
  return true;
}

int32_t RowField(const SearchTable& t, size_t row, size_t field) {
  int32_t v;
  std::memcpy(&v, t.rows + row * 8 + field * 4, 4);
  return v;
}

// The CFA rule of row's FDE.
Cfa RowCfa(const uint8_t* hdr, const SearchTable& t, size_t row) {
  return ReadFde(hdr + RowField(t, row, 1));
}

}  // namespace

Cfa CfaAt(const uint8_t* hdr, uintptr_t pc) {
  SearchTable t;
  if (!OpenTable(hdr, &t) || t.count == 0) return kCfaUnknown;
  const auto base = reinterpret_cast<uintptr_t>(hdr);
  size_t lo = 0, hi = t.count;  // the last row whose start is <= pc
  while (hi - lo > 1) {
    const size_t mid = (lo + hi) / 2;
    if (base + RowField(t, mid, 0) <= pc) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return RowCfa(hdr, t, lo);
}

bool Scan(const uint8_t* hdr, size_t* fdes, size_t* fp_fdes) {
  *fdes = *fp_fdes = 0;
  SearchTable t;
  if (!OpenTable(hdr, &t)) return false;
  const size_t step = t.count > kMaxScanned ? t.count / kMaxScanned : 1;
  for (size_t i = 0; i < t.count; i += step) {
    const Cfa cfa = RowCfa(hdr, t, i);
    // Frameless leaves and the PLT's stubs do not count.
    if (cfa == kCfaUnknown || cfa == kCfaUntouched || cfa == kCfaExpression) continue;
    ++*fdes;
    if (cfa == kCfaOnRbp) ++*fp_fdes;
  }
  return true;
}

}  // namespace assay::profiler::eh_frame
