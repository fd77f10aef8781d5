// A read-only memory map of a whole file. Weights are used straight from the map:
// the kernel pages them in on first touch and can drop them under pressure, so a
// loaded model costs its file size in page cache, not a second copy on the heap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace dsv3 {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace dsv3
