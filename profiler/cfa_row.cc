// One row of an FDE's CFA table (eh_frame.h: RowAt): the CIE's initial
// instructions, then the FDE's up to the pc, run for the CFA, the return
// address and %rbp; every other column is skipped.
#include "profiler/eh_frame.h"
#include "profiler/eh_frame_records.h"

namespace assay::profiler::eh_frame {
namespace {

constexpr uint64_t kRbp = 6, kRsp = 7;

// A register's rule, for the two registers a step follows.
enum RuleKind : uint8_t { kSame, kUndefined, kOffset, kUnfollowed };
struct Rule {
  RuleKind kind;
  int64_t offset;  // kOffset: saved at CFA + offset
};

struct State {
  uint64_t cfa_reg;
  int64_t cfa_offset;
  bool cfa_unfollowed;  // an expression, or a register other than 6 and 7
  Rule ra;
  Rule rbp;
};

// DW_CFA_remember_state's stack: glibc's and GCC's functions nest it once or
// twice at most.
constexpr int kStates = 8;

class Interpreter {
 public:
  Interpreter(const Fde& f, uintptr_t pc) : f_(f), pc_(pc) {}

  // Runs [p, end); false on an instruction it does not know. Stops, true,
  // once the location passes pc (the row for pc is then the state).
  bool Run(const uint8_t* p, const uint8_t* end) {
    while (p < end) {
      const uint8_t op = *p++;
      const uint8_t low = op & 0x3f;
      switch (op >> 6) {
        case 1:  // advance_loc
          if (Advance(low)) return true;
          continue;
        case 2:  // offset reg, factored offset
          Set(low, Rule{kOffset, static_cast<int64_t>(Uleb(p, end)) * f_.data_align});
          continue;
        case 3:  // restore reg
          Set(low, InitialRule(low));
          continue;
        default:
          break;
      }
      switch (op) {
        case 0x00:  // nop
          break;
        case 0x01:  // set_loc: not followed
          return false;
        case 0x02:
          if (Advance(ReadU(p, 1))) return true;
          break;
        case 0x03:
          if (Advance(ReadU(p, 2))) return true;
          break;
        case 0x04:
          if (Advance(ReadU(p, 4))) return true;
          break;
        case 0x05: {  // offset_extended reg, factored offset
          const uint64_t reg = Uleb(p, end);
          Set(reg, Rule{kOffset, static_cast<int64_t>(Uleb(p, end)) * f_.data_align});
          break;
        }
        case 0x11: {  // offset_extended_sf reg, signed factored offset
          const uint64_t reg = Uleb(p, end);
          Set(reg, Rule{kOffset, Sleb(p, end) * f_.data_align});
          break;
        }
        case 0x2f: {  // GNU_negative_offset_extended
          const uint64_t reg = Uleb(p, end);
          Set(reg, Rule{kOffset, -static_cast<int64_t>(Uleb(p, end)) * f_.data_align});
          break;
        }
        case 0x06: {  // restore_extended
          const uint64_t reg = Uleb(p, end);
          Set(reg, InitialRule(reg));
          break;
        }
        case 0x07:  // undefined
          Set(Uleb(p, end), Rule{kUndefined, 0});
          break;
        case 0x08:  // same_value
          Set(Uleb(p, end), Rule{kSame, 0});
          break;
        case 0x09:    // register reg, reg2
        case 0x14:    // val_offset
        case 0x15: {  // val_offset_sf
          Set(Uleb(p, end), Rule{kUnfollowed, 0});
          Uleb(p, end);
          break;
        }
        case 0x0a:  // remember_state
          if (depth_ == kStates) return false;
          saved_[depth_++] = s_;
          break;
        case 0x0b:  // restore_state
          if (depth_ == 0) return false;
          s_ = saved_[--depth_];
          break;
        case 0x0c:  // def_cfa reg, offset
          s_.cfa_reg = Uleb(p, end);
          s_.cfa_offset = static_cast<int64_t>(Uleb(p, end));
          s_.cfa_unfollowed = false;
          break;
        case 0x12:  // def_cfa_sf reg, signed factored offset
          s_.cfa_reg = Uleb(p, end);
          s_.cfa_offset = Sleb(p, end) * f_.data_align;
          s_.cfa_unfollowed = false;
          break;
        case 0x0d:  // def_cfa_register
          s_.cfa_reg = Uleb(p, end);
          s_.cfa_unfollowed = false;
          break;
        case 0x0e:  // def_cfa_offset
          s_.cfa_offset = static_cast<int64_t>(Uleb(p, end));
          break;
        case 0x13:  // def_cfa_offset_sf
          s_.cfa_offset = Sleb(p, end) * f_.data_align;
          break;
        case 0x0f: {  // def_cfa_expression block
          s_.cfa_unfollowed = true;
          const uint64_t n = Uleb(p, end);
          p += n;
          break;
        }
        case 0x10:    // expression reg, block
        case 0x16: {  // val_expression reg, block
          Set(Uleb(p, end), Rule{kUnfollowed, 0});
          const uint64_t n = Uleb(p, end);
          p += n;
          break;
        }
        case 0x2e:  // GNU_args_size
          Uleb(p, end);
          break;
        default:
          return false;
      }
    }
    return true;
  }

  // The CIE's rules: what DW_CFA_restore returns to.
  void KeepInitial() { initial_ = s_; }
  bool passed() const { return loc_ > pc_; }
  const State& state() const { return s_; }

 private:
  // Moves the location by delta code units: true once it passes pc.
  bool Advance(uint64_t delta) {
    loc_ += delta * f_.code_align;
    return loc_ > pc_;
  }

  void Set(uint64_t reg, Rule rule) {
    if (reg == f_.ra_reg) s_.ra = rule;
    if (reg == kRbp) s_.rbp = rule;
  }

  Rule InitialRule(uint64_t reg) const {
    if (reg == f_.ra_reg) return initial_.ra;
    if (reg == kRbp) return initial_.rbp;
    return Rule{kSame, 0};
  }

  const Fde& f_;
  const uintptr_t pc_;
  uintptr_t loc_ = f_.start;
  State s_{kRsp, 8, false, Rule{kSame, 0}, Rule{kSame, 0}};
  State initial_ = s_;
  State saved_[kStates];
  int depth_ = 0;
};

}  // namespace

bool RowAt(const uint8_t* hdr, uintptr_t pc, Row* row) {
  SearchTable t;
  if (!OpenTable(hdr, &t)) return false;
  const uint8_t* fde = FdeBefore(t, pc);
  Fde f;
  if (fde == nullptr || !ParseFde(fde, &f) || pc - f.start >= f.range) return false;
  Interpreter in(f, pc);
  if (!in.Run(f.cie_insns, f.cie_end)) return false;
  in.KeepInitial();
  if (!in.passed() && !in.Run(f.insns, f.end)) return false;
  const State& s = in.state();
  if (s.cfa_unfollowed || (s.cfa_reg != kRbp && s.cfa_reg != kRsp)) return false;
  if (s.ra.kind == kUnfollowed || s.ra.kind == kSame) return false;
  // The outermost frame's %rbp does not matter (glibc's _start clears it).
  if (s.ra.kind != kUndefined && (s.rbp.kind == kUnfollowed || s.rbp.kind == kUndefined))
    return false;
  *row = Row{static_cast<uint8_t>(s.cfa_reg),
             s.ra.kind == kUndefined,
             s.rbp.kind == kOffset,
             s.cfa_offset,
             s.ra.offset,
             s.rbp.offset};
  return true;
}

}  // namespace assay::profiler::eh_frame
