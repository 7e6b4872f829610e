// The safetensors rejection corpus (tests/corpus/): every malformed file must be refused with
// Error(kInvalidFile) whose message names the file and the broken rule (expected.txt), every file
// in the folder must have such a line, and every file in valid/ must load.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "batch_forge/core/error.h"
#include "batch_forge/io/safetensors.h"

namespace bf {
namespace {

namespace fs = std::filesystem;

struct Expectation {
  std::string file;
  std::string substring;
};

fs::path corpus_dir() {
  const char* root = std::getenv("BF_SOURCE_DIR");
  return fs::path(root != nullptr ? root : ".") / "tests" / "corpus";
}

// expected.txt: "<file>\t<substring>" per line; '#' starts a comment line.
std::vector<Expectation> read_expectations() {
  std::ifstream in(corpus_dir() / "expected.txt");
  EXPECT_TRUE(in) << "cannot read " << (corpus_dir() / "expected.txt") << " (is BF_SOURCE_DIR set?)";
  std::vector<Expectation> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t tab = line.find('\t');
    EXPECT_NE(tab, std::string::npos) << "expected.txt line without a tab: " << line;
    if (tab == std::string::npos) continue;
    out.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  return out;
}

TEST(Corpus, EveryMalformedFileIsRejectedWithItsMessage) {
  const std::vector<Expectation> expectations = read_expectations();
  ASSERT_GE(expectations.size(), 20u);
  for (const Expectation& e : expectations) {
    SCOPED_TRACE(e.file);
    ASSERT_FALSE(e.substring.empty());
    try {
      SafetensorsFile::open(corpus_dir() / e.file);
      ADD_FAILURE() << e.file << " was accepted";
    } catch (const Error& err) {
      EXPECT_EQ(err.code(), ErrorCode::kInvalidFile) << err.what();
      EXPECT_EQ(err.component(), "safetensors");
      const std::string what = err.what();
      EXPECT_NE(what.find(e.file), std::string::npos) << "message does not name the file: " << what;
      EXPECT_NE(what.find(e.substring), std::string::npos)
          << "message: " << what << "\nexpected to contain: " << e.substring;
    }
  }
}

TEST(Corpus, ExpectedSubstringsAreDistinct) {
  std::set<std::string> seen;
  for (const Expectation& e : read_expectations())
    EXPECT_TRUE(seen.insert(e.substring).second) << "two files expect the same message: " << e.substring;
}

TEST(Corpus, EveryFileHasAnExpectation) {
  std::set<std::string> listed;
  for (const Expectation& e : read_expectations()) {
    EXPECT_TRUE(listed.insert(e.file).second) << e.file << " is listed twice";
    EXPECT_TRUE(fs::exists(corpus_dir() / e.file)) << e.file << " is listed but missing";
  }
  int n_files = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(corpus_dir())) {
    if (entry.path().extension() != ".safetensors") continue;
    ++n_files;
    EXPECT_TRUE(listed.contains(entry.path().filename().string()))
        << entry.path().filename() << " has no line in expected.txt";
  }
  EXPECT_EQ(n_files, static_cast<int>(listed.size()));
}

TEST(Corpus, ValidFilesLoad) {
  int n_files = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(corpus_dir() / "valid")) {
    if (entry.path().extension() != ".safetensors") continue;
    ++n_files;
    SCOPED_TRACE(entry.path().string());
    try {
      const SafetensorsFile file = SafetensorsFile::open(entry.path());
      for (const TensorInfo& t : file.tensors()) {
        const ConstTensorView v = file.view(t);
        EXPECT_EQ(v.shape.dims().size(), t.dims.size());
      }
    } catch (const Error& err) {
      ADD_FAILURE() << err.what();
    }
  }
  EXPECT_GE(n_files, 4);
}

}  // namespace
}  // namespace bf
