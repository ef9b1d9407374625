// Which of libassay.so's code pages a small process has mapped once it has
// started (the profiler too, under MALLOC_PROF) and allocated a little: run
// under LD_PRELOAD by text_layout.sh. The kernel maps a file's text by
// fault-around: a fault maps up to 16 pages from the start of its 64 KiB
// window of the address space (or from the mapping's start), so the pages
// it maps lie below its own offset + 64 KiB. The start-up code all lies in
// the file's first 64 KiB (text_layout.sh checks the symbols), so nothing
// at file offset 128 KiB or more is mapped unless other code ran: a
// function outside that cluster, run at start-up, maps 16 more pages
// (NoSessionReaders, moved to a file of its own without ASSAY_STARTUP, cost
// a MALLOC_PROF process 64 KiB that way).
// Prints the mapped pages from that offset on and exits 1 if there are any;
// 2 if the mapping or pagemap cannot be read. After the allocations
// measured: no malloc and no FILE streams (raw reads and writes; sscanf and
// snprintf only format strings).
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_maps[1 << 16];

static void Say(const char* s) {
  if (write(2, s, strlen(s)) < 0) _exit(2);
}

int main(void) {
  void* blocks[64];
  for (int i = 0; i < 64; ++i) {
    blocks[i] = malloc(16 + (size_t)i * 24);
    if (blocks[i] == NULL) return 2;
    memset(blocks[i], 1, 16 + (size_t)i * 24);
  }
  for (int i = 0; i < 64; i += 2) free(blocks[i]);

  const int maps = open("/proc/self/maps", O_RDONLY);
  if (maps < 0) return 2;
  size_t len = 0;
  for (ssize_t n; (n = read(maps, g_maps + len, sizeof(g_maps) - 1 - len)) > 0;) len += (size_t)n;
  close(maps);
  g_maps[len] = '\0';
  // The executable mapping of libassay: "start-end r-xp offset dev inode path".
  unsigned long start = 0, end = 0, offset = 0;
  for (char* line = g_maps; line != NULL && *line != '\0';) {
    char* next = strchr(line, '\n');
    if (next != NULL) *next++ = '\0';
    if (strstr(line, " r-xp ") != NULL && strstr(line, "libassay") != NULL) {
      if (sscanf(line, "%lx-%lx r-xp %lx", &start, &end, &offset) != 3) return 2;
      break;
    }
    line = next;
  }
  if (start == 0) {
    Say("startup_text: no libassay r-xp mapping (not preloaded?)\n");
    return 2;
  }
  const int pagemap = open("/proc/self/pagemap", O_RDONLY);
  if (pagemap < 0) return 2;
  const unsigned long page = 4096, limit = 128 << 10;  // file offset
  int stray = 0;
  for (unsigned long a = start + (offset < limit ? limit - offset : 0); a < end; a += page) {
    uint64_t entry = 0;
    if (pread(pagemap, &entry, sizeof(entry), (off_t)(a / page * sizeof(entry))) !=
        (ssize_t)sizeof(entry)) {
      return 2;
    }
    if ((entry >> 63) & 1) {  // present
      char buf[96];
      snprintf(buf, sizeof(buf), "startup_text: page at file offset 0x%lx is mapped\n",
               a - start + offset);
      Say(buf);
      stray = 1;
    }
  }
  close(pagemap);
  if (!stray) Say("startup_text: no code past the file's first 128 KiB is mapped\n");
  return stray;
}
