#include "kernels/cpu/transpose.h"

#include <gtest/gtest.h>

#include <vector>

namespace dsv3 {
namespace {

// Sizes that leave partial blocks on both sides, a single row and a single column.
TEST(TransposeTest, EveryElementLandsAtItsTransposedPlace) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{70, 45}, {1, 33}, {33, 1}, {64, 32}}) {
    std::vector<float> x(static_cast<size_t>(rows * cols)), out(x.size(), -1.0f);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
    transpose(x.data(), rows, cols, out.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        ASSERT_EQ(out[c * rows + r], x[r * cols + c]) << rows << " x " << cols << " at " << r << ", " << c;
  }
}

}  // namespace
}  // namespace dsv3
