// The BackingStore bug as a program (external_memory.h): a 48-byte store
// attached to a small wrapper, then released when the wrapper is swept.
//
//   external_type_mismatch recorded   through ExternalMemory: the deleter
//                                     recorded at attach time knows the real
//                                     type; clean under AddressSanitizer
//   external_type_mismatch static     the pattern before the fix: the wrapper
//                                     keeps the memory as the 1-byte type it
//                                     exposes and deletes it as that type;
//                                     AddressSanitizer reports
//                                     new-delete-type-mismatch (CTest expects
//                                     the report in the asan preset)
#include <handoff/external_memory.h>
#include <handoff/heap.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

namespace {

struct Store48 {
  std::uint64_t words[6] = {};
};

// What the release site sees: a byte pointer.
struct StaticTypeWrapper : handoff::Leaf {
  std::byte* data = nullptr;
  ~StaticTypeWrapper() { delete data; }  // the bug: 48 bytes freed as 1
};

struct RecordedWrapper : handoff::Leaf {
  handoff::ExternalMemory store;
};

[[gnu::noinline]] void make_static(handoff::Heap& heap) {
  auto* w = heap.make<StaticTypeWrapper>();
  w->data = reinterpret_cast<std::byte*>(new Store48);
}

[[gnu::noinline]] void make_recorded(handoff::Heap& heap) {
  auto* w = heap.make<RecordedWrapper>();
  w->store.attach(heap, std::make_unique<Store48>(), sizeof(Store48));
}

}  // namespace

int main(int argc, char** argv) {
  const bool use_static = argc > 1 && std::strcmp(argv[1], "static") == 0;
  if (argc < 2 || (!use_static && std::strcmp(argv[1], "recorded") != 0)) {
    std::fprintf(stderr, "usage: %s recorded|static\n", argv[0]);
    return 2;
  }
  handoff::HeapConfig config = handoff::HeapConfig::from_environment();
  config.sync_sweep = 1;
  handoff::Heap heap(config);
  // The wrappers are made on a thread that then detaches and ends, so no
  // stale copy of their addresses can stay in a stack, an ASan fake frame
  // or a register that the conservative scan of the collecting thread reads.
  std::thread maker([&] {
    handoff::ThreadScope scope(heap);
    for (int i = 0; i < 16; ++i) use_static ? make_static(heap) : make_recorded(heap);
  });
  maker.join();
  handoff::ThreadScope attached(heap);  // after the join: a thread blocked in join() must not be attached
  heap.collect();
  const handoff::HeapStats s = heap.stats();
  std::printf("%s: %llu objects swept, %llu external bytes still attached\n", argv[1],
              static_cast<unsigned long long>(s.objects_swept), static_cast<unsigned long long>(s.external_bytes));
  return 0;
}
