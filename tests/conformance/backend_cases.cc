// The backend interface itself: buffers, descriptions, unsupported backends.
#include "conformance.h"

#include <cstring>

#include "batch_forge/core/error.h"

namespace bf::conformance {
namespace {

TEST_P(BackendTest, AllocatesAlignedWritableBuffers) {
  auto buffer = backend().allocate(1000);
  ASSERT_NE(buffer->data(), nullptr);
  EXPECT_EQ(buffer->size(), 1000u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer->data()) % 64, 0u);
  if (backend().name() == "cpu") {
    std::memset(buffer->data(), 0xAB, 1000);
    EXPECT_EQ(static_cast<unsigned char>(buffer->data()[999]), 0xAB);
  }
  EXPECT_EQ(backend().allocate(0)->size(), 0u);
}

TEST_P(BackendTest, DescribesItself) {
  EXPECT_EQ(backend().name(), GetParam().backend);
  EXPECT_NE(backend().description().find(GetParam().backend), std::string::npos) << backend().description();
}

TEST(BackendRegistry, StubsSayNotCompiledIn) {
  const auto entries = backend_entries();
  ASSERT_FALSE(entries.empty());
  for (const BackendEntry& e : entries) {
    if (e.compiled_in) continue;
    try {
      create_backend(e.name);
      FAIL() << e.name << " was created although not compiled in";
    } catch (const Error& err) {
      EXPECT_EQ(err.code(), ErrorCode::kUnsupported);
      EXPECT_NE(std::string(err.what()).find("not compiled in"), std::string::npos) << err.what();
    }
  }
  EXPECT_THROW(create_backend("tpu"), Error);
  EXPECT_NE(std::find(available_backends().begin(), available_backends().end(), "cpu"), available_backends().end());
}

TEST(BackendRegistry, UnknownIsaIsAnError) {
  BackendOptions options;
  options.isa = "avx9000";
  EXPECT_THROW(create_backend("cpu", options), Error);
}

}  // namespace
}  // namespace bf::conformance
