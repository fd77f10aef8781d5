// Writes a file so that a crash or kill at any moment leaves either the old file or the
// complete new one: data goes to a temporary name beside the target, is fsync'ed, then
// renamed over the target, and the directory entry is fsync'ed too.
#pragma once

#include <cstddef>
#include <string>

namespace dsv3 {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();  // removes the temporary if commit() was never reached
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);
  void commit();

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
};

}  // namespace dsv3
