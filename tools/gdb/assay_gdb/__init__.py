# assay_gdb: the gdb heap walker of assay as a package, loaded by
# tools/gdb/assay.py (`source .../assay.py` in gdb). Modules, lowest first:
#   inferior       memory reads, WalkError, what is being read, number format
#   layout_fields  AssayLayout's field names, magic and version (generated
#                  from base/layout.h by the build: gen_layout_fields.py)
#   layout         the descriptor `assay_layout`, read and checked
#   walk           the allocator's structures: live blocks; sampled entries
#   symbols        names of code addresses, file mappings, build ids
#   pprof          pprof heap profiles of the sampled entries
#   commands       the `heap` commands; register() defines them in gdb
