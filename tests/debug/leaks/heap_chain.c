// A global points to a chain of 1000 blocks (each 48 bytes): not leaked.
// leaked: 0
#include <stdlib.h>
#include <string.h>
struct node {
  struct node* next;
  char pad[40];
};
struct node* g_head;
int main(void) {
  for (int i = 0; i < 1000; ++i) {
    struct node* n = malloc(sizeof(*n));
    memset(n, 9, sizeof(*n));
    n->next = g_head;
    g_head = n;
  }
  return 0;
}
