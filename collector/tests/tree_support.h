// A binary tree of traced nodes, the live set the parallel-marking tests
// build (mark_work_test.cpp, marker_policy_test.cpp).
#pragma once

#include <handoff/heap.h>

namespace handoff::tree_support {

struct Node {
  Member<Node> left;
  Member<Node> right;
  void trace(Visitor& v) const {
    v.trace(left);
    v.trace(right);
  }
};

// 2^(depth + 1) - 1 nodes.
inline Node* tree(Heap& heap, int depth) {
  Node* n = heap.make<Node>();
  if (depth > 0) {
    Node* l = tree(heap, depth - 1);
    Node* r = tree(heap, depth - 1);
    n->left = l;
    n->right = r;
  }
  return n;
}

}  // namespace handoff::tree_support
