// Reading .eh_frame's records (eh_frame_records.h).
#include "profiler/eh_frame_records.h"

namespace assay::profiler::eh_frame {

namespace {

// A value of encoding enc and size bytes at p (advanced past it), as a
// signed or unsigned number by the encoding's low nibble.
int64_t ReadEncoded(const uint8_t*& p, uint8_t enc, int size) {
  const uint64_t v = ReadU(p, size);
  if ((enc & 0x08) == 0 || size == 8) return static_cast<int64_t>(v);
  const int bits = size * 8;  // sign-extend sdata2 / sdata4
  return static_cast<int64_t>(v << (64 - bits)) >> (64 - bits);
}

// Parses the CIE record at c into *out.
bool ParseCie(const uint8_t* c, Cie* out) {
  const uint8_t* const at = c;
  const uint32_t clen = static_cast<uint32_t>(ReadU(c, 4));
  if (clen == 0 || clen == 0xffffffffu) return false;
  const uint8_t* cend = c + clen;
  if (ReadU(c, 4) != 0) return false;
  const uint8_t version = *c++;
  const char* aug = reinterpret_cast<const char*>(c);
  c += std::strlen(aug) + 1;
  out->code_align = Uleb(c, cend);
  out->data_align = Sleb(c, cend);
  out->ra_reg = version == 1 ? *c++ : Uleb(c, cend);
  out->fde_enc = 0;  // absptr
  out->z = aug[0] == 'z';
  if (out->z) {
    const uint64_t alen = Uleb(c, cend);
    const uint8_t* a = c;
    for (const char* q = aug + 1; *q != '\0'; ++q) {
      if (*q == 'R') {
        out->fde_enc = *a++;
      } else if (*q == 'L') {
        a++;
      } else if (*q == 'P') {
        const uint8_t penc = *a++;
        const int sz = EncodedSize(penc);
        if (sz == 0) return false;
        a += sz;
      } else if (*q != 'S') {
        return false;
      }
    }
    c += alen;
  } else if (aug[0] != '\0') {
    return false;
  }
  out->addr_size = EncodedSize(out->fde_enc);
  if (out->addr_size == 0 || c > cend) return false;
  out->insns = c;
  out->end = cend;
  out->at = at;
  return true;
}

}  // namespace

bool ParseFde(const uint8_t* fde, Fde* out, Cie* cie) {
  const uint8_t* p = fde;
  const uint32_t len = static_cast<uint32_t>(ReadU(p, 4));
  if (len == 0 || len == 0xffffffffu) return false;
  const uint8_t* end = p + len;
  const uint8_t* id_at = p;
  const uint32_t cie_off = static_cast<uint32_t>(ReadU(p, 4));
  if (cie_off == 0) return false;  // a CIE, not an FDE
  const uint8_t* c = id_at - cie_off;
  if (cie->at != c) {
    cie->at = nullptr;  // until parsed whole
    if (!ParseCie(c, cie)) return false;
  }
  out->code_align = cie->code_align;
  out->data_align = cie->data_align;
  out->ra_reg = cie->ra_reg;
  out->cie_insns = cie->insns;
  out->cie_end = cie->end;
  const uint8_t fde_enc = cie->fde_enc;
  const int sz = cie->addr_size;
  out->addr_size = sz;
  const uint8_t application = fde_enc & 0x70;
  const uintptr_t start_at = reinterpret_cast<uintptr_t>(p);
  const int64_t start = ReadEncoded(p, fde_enc, sz);
  const int64_t range = ReadEncoded(p, fde_enc & 0x0f, sz);
  out->start = out->range = 0;
  if (application == 0x00) {  // absptr
    out->start = static_cast<uintptr_t>(start);
    out->range = static_cast<uintptr_t>(range);
  } else if (application == 0x10) {  // pcrel: from the field's own address
    out->start = start_at + static_cast<uintptr_t>(start);
    out->range = static_cast<uintptr_t>(range);
  }
  if (cie->z) {
    const uint64_t alen = Uleb(p, end);
    p += alen;
  }
  if (p > end) return false;
  out->insns = p;
  out->end = end;
  return true;
}

bool OpenTable(const uint8_t* hdr, SearchTable* t) {
  if (hdr[0] != 1 || hdr[2] != 0x03 || hdr[3] != 0x3b) return false;
  const int ptr_size = EncodedSize(hdr[1]);
  if (ptr_size == 0) return false;
  const uint8_t* p = hdr + 4 + ptr_size;
  t->hdr = hdr;
  t->count = static_cast<uint32_t>(ReadU(p, 4));
  t->rows = p;
  return true;
}

namespace {

int32_t RowField(const SearchTable& t, size_t row, size_t field) {
  int32_t v;
  std::memcpy(&v, t.rows + row * 8 + field * 4, 4);
  return v;
}

}  // namespace

const uint8_t* FdeOfRow(const SearchTable& t, size_t row) { return t.hdr + RowField(t, row, 1); }

const uint8_t* FdeBefore(const SearchTable& t, uintptr_t pc) {
  const auto base = reinterpret_cast<uintptr_t>(t.hdr);
  if (t.count == 0 || base + RowField(t, 0, 0) > pc) return nullptr;
  size_t lo = 0, hi = t.count;  // the last row whose start is <= pc
  while (hi - lo > 1) {
    const size_t mid = (lo + hi) / 2;
    if (base + RowField(t, mid, 0) <= pc) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return FdeOfRow(t, lo);
}

}  // namespace assay::profiler::eh_frame
