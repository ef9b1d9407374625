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

  // Runs [p, end); false on an instruction it does not know, or one it does
  // not follow (set_loc). Stops, true, once the location passes pc (the row
  // for pc is then the state).
  bool Run(const uint8_t* p, const uint8_t* end) {
    CfaOp op;
    while (p < end) {
      if (!NextCfaOp(p, end, f_, &op)) return false;
      switch (op.kind) {
        case CfaOpKind::kNop:
          break;
        case CfaOpKind::kAdvance:
          loc_ += static_cast<uintptr_t>(op.value);
          if (loc_ > pc_) return true;
          break;
        case CfaOpKind::kSetLoc:
          return false;
        case CfaOpKind::kOffset:
          Set(op.reg, Rule{kOffset, op.value});
          break;
        case CfaOpKind::kRestore:
          Set(op.reg, InitialRule(op.reg));
          break;
        case CfaOpKind::kUndefined:
          Set(op.reg, Rule{kUndefined, 0});
          break;
        case CfaOpKind::kSameValue:
          Set(op.reg, Rule{kSame, 0});
          break;
        case CfaOpKind::kOtherRule:
          Set(op.reg, Rule{kUnfollowed, 0});
          break;
        case CfaOpKind::kRemember:
          if (depth_ == kStates) return false;
          saved_[depth_++] = s_;
          break;
        case CfaOpKind::kRestoreState:
          if (depth_ == 0) return false;
          s_ = saved_[--depth_];
          break;
        case CfaOpKind::kDefCfa:
          s_.cfa_reg = op.reg;
          s_.cfa_offset = op.value;
          s_.cfa_unfollowed = false;
          break;
        case CfaOpKind::kDefCfaRegister:
          s_.cfa_reg = op.reg;
          s_.cfa_unfollowed = false;
          break;
        case CfaOpKind::kDefCfaOffset:
          s_.cfa_offset = op.value;
          break;
        case CfaOpKind::kDefCfaExpression:
          s_.cfa_unfollowed = true;
          break;
      }
    }
    return true;
  }

  // The CIE's rules: what DW_CFA_restore returns to.
  void KeepInitial() { initial_ = s_; }
  bool passed() const { return loc_ > pc_; }
  const State& state() const { return s_; }

 private:
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
