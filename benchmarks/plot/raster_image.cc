#include "benchmarks/plot/raster_image.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "benchmarks/plot/bitmap_font.h"

namespace dilated {
namespace plot {

RasterImage::RasterImage(int width, int height, Rgb background)
    : width_(std::max(width, 1)),
      height_(std::max(height, 1)),
      pixels_(static_cast<size_t>(width_) * height_ * 3) {
  FillRect(0, 0, width_, height_, background);
}

Rgb RasterImage::At(int x, int y) const {
  const size_t offset = (static_cast<size_t>(y) * width_ + x) * 3;
  return Rgb{pixels_[offset], pixels_[offset + 1], pixels_[offset + 2]};
}

void RasterImage::Set(int x, int y, Rgb color) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  const size_t offset = (static_cast<size_t>(y) * width_ + x) * 3;
  pixels_[offset] = color.r;
  pixels_[offset + 1] = color.g;
  pixels_[offset + 2] = color.b;
}

void RasterImage::FillRect(int x0, int y0, int x1, int y1, Rgb color) {
  x0 = std::max(x0, 0);
  y0 = std::max(y0, 0);
  x1 = std::min(x1, width_);
  y1 = std::min(y1, height_);
  for (int y = y0; y < y1; ++y) {
    for (int x = x0; x < x1; ++x) Set(x, y, color);
  }
}

void RasterImage::DrawLine(double x0, double y0, double x1, double y1,
                           int thickness, Rgb color) {
  // One brush stamp per pixel step along the longer axis.
  const double steps = std::max({std::fabs(x1 - x0), std::fabs(y1 - y0), 1.0});
  const int before = (thickness - 1) / 2;
  for (int i = 0; i <= static_cast<int>(std::ceil(steps)); ++i) {
    const double t = std::min(i / steps, 1.0);
    const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0)));
    const int y = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
    FillRect(x - before, y - before, x - before + thickness,
             y - before + thickness, color);
  }
}

void RasterImage::DrawText(int x, int y, absl::string_view text, int scale,
                           Rgb color) {
  for (size_t i = 0; i < text.size(); ++i) {
    const GlyphRows& rows = Glyph(text[i]);
    const int left = x + static_cast<int>(i) * kGlyphAdvance * scale;
    for (int row = 0; row < kGlyphHeight; ++row) {
      for (int column = 0; column < kGlyphWidth; ++column) {
        if ((rows[row] >> (kGlyphWidth - 1 - column) & 1) == 0) continue;
        FillRect(left + column * scale, y + row * scale,
                 left + (column + 1) * scale, y + (row + 1) * scale, color);
      }
    }
  }
}

int RasterImage::TextWidth(absl::string_view text, int scale) {
  if (text.empty()) return 0;
  return (static_cast<int>(text.size()) * kGlyphAdvance - 1) * scale;
}

int RasterImage::TextHeight(int scale) { return kGlyphHeight * scale; }

}  // namespace plot
}  // namespace dilated
