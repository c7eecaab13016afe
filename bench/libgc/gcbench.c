/* GCBench in C against gc.h (after Ellis, Kovac and Boehm's benchmark; this
 * is a fresh implementation): builds short-lived binary trees top-down and
 * bottom-up at several depths while a long-lived tree and a large
 * pointer-free array stay live. Built once against Debian's libgc and run
 * on either libgc.so.1 (LD_LIBRARY_PATH selects handoff's). Prints a
 * checksum so that both runs can be compared. */
#include <gc/gc.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct Node {
  struct Node* left;
  struct Node* right;
  long i, j;
} Node;

static Node* new_node(Node* l, Node* r) {
  Node* n = (Node*)GC_malloc(sizeof(Node));
  if (n == NULL) {
    fprintf(stderr, "gcbench: out of memory\n");
    exit(1);
  }
  n->left = l;
  n->right = r;
  return n;
}

static int tree_size(int depth) { return (1 << (depth + 1)) - 1; }

static void populate(int depth, Node* n) {
  if (depth <= 0) return;
  n->left = new_node(NULL, NULL);
  n->right = new_node(NULL, NULL);
  populate(depth - 1, n->left);
  populate(depth - 1, n->right);
}

static Node* make_tree(int depth) {
  if (depth <= 0) return new_node(NULL, NULL);
  return new_node(make_tree(depth - 1), make_tree(depth - 1));
}

static long count(const Node* n) { return n == NULL ? 0 : 1 + count(n->left) + count(n->right); }

int main(int argc, char** argv) {
  const int stretch_depth = argc > 1 ? atoi(argv[1]) : 18;
  const int long_lived_depth = stretch_depth - 2;
  const int array_size = 500000;
  const int min_depth = 4;
  const int max_depth = stretch_depth - 2;
  long checksum = 0;
  GC_INIT();
  checksum += count(make_tree(stretch_depth));
  Node* long_lived = new_node(NULL, NULL);
  populate(long_lived_depth, long_lived);
  double* array = (double*)GC_malloc_atomic(sizeof(double) * array_size);
  for (int i = 0; i < array_size / 2; ++i) array[i] = 1.0 / i;
  for (int d = min_depth; d <= max_depth; d += 2) {
    const int iterations = 2 * tree_size(stretch_depth) / tree_size(d);
    for (int i = 0; i < iterations; ++i) {
      Node* t = new_node(NULL, NULL);
      populate(d, t);
      checksum += count(t) & 1;
      t = make_tree(d);
      checksum += count(t) & 1;
    }
  }
  if (long_lived == NULL || array[1000] != 1.0 / 1000) {
    fprintf(stderr, "gcbench: the long-lived data was lost\n");
    return 1;
  }
  checksum += count(long_lived);
  printf("gcbench: checksum %ld, %lu collections\n", checksum, (unsigned long)GC_get_gc_no());
  return 0;
}
