// libassay.so only (-Wl,--wrap=__gxx_personality_v0, CMakeLists.txt): the
// personality routine of the library's own frames is libsupc++'s, linked
// in, and it reads and writes the unwind context through the library's own
// hidden copy of libgcc_eh (_Unwind_GetGR, _Unwind_SetGR). That copy sizes
// the registers from a table it fills only when it first unwinds itself: an
// exception that the program's libgcc_s raises through our frames (a
// throwing new_handler under nothrow new, a throwing tracker callback)
// would meet the empty table, and the accessors abort. The wrapper fills it
// first, once. Both copies come from the same GCC, so the context's layout
// is the same (docs/DESIGN.md "Start-up footprint").
#include <unwind.h>

extern "C" {

_Unwind_Reason_Code __real___gxx_personality_v0(int version, _Unwind_Action actions,
                                                _Unwind_Exception_Class klass,
                                                _Unwind_Exception* exception,
                                                _Unwind_Context* context);

namespace {

bool g_tables_ready = false;

// Stops the walk at its first frame: the table is filled by then.
_Unwind_Reason_Code StopAtFirstFrame(_Unwind_Context*, void*) { return _URC_END_OF_STACK; }

}  // namespace

__attribute__((visibility("hidden"))) _Unwind_Reason_Code __wrap___gxx_personality_v0(
    int version, _Unwind_Action actions, _Unwind_Exception_Class klass,
    _Unwind_Exception* exception, _Unwind_Context* context) {
  if (!__atomic_load_n(&g_tables_ready, __ATOMIC_ACQUIRE)) {
    _Unwind_Backtrace(StopAtFirstFrame, nullptr);  // our copy's uw_init_context fills the table
    __atomic_store_n(&g_tables_ready, true, __ATOMIC_RELEASE);
  }
  return __real___gxx_personality_v0(version, actions, klass, exception, context);
}

}  // extern "C"
