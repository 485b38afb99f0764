// An RGB raster to draw benchmark plots on: filled rectangles, thick lines
// and text in the bitmap font. Drawing outside the image is clipped.

#ifndef DILATED_BENCHMARKS_PLOT_RASTER_IMAGE_H_
#define DILATED_BENCHMARKS_PLOT_RASTER_IMAGE_H_

#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"

namespace dilated {
namespace plot {

struct Rgb {
  uint8_t r = 0;
  uint8_t g = 0;
  uint8_t b = 0;

  friend bool operator==(Rgb a, Rgb b) {
    return a.r == b.r && a.g == b.g && a.b == b.b;
  }
  friend bool operator!=(Rgb a, Rgb b) { return !(a == b); }
};

class RasterImage {
 public:
  // A width x height image filled with `background`; both sizes >= 1.
  RasterImage(int width, int height, Rgb background);

  int width() const { return width_; }
  int height() const { return height_; }

  // Pixels row by row from the top, three bytes (r, g, b) each.
  const std::vector<uint8_t>& pixels() const { return pixels_; }

  // The pixel at column x, row y (0, 0 is the top left); inside the image.
  Rgb At(int x, int y) const;

  // Sets one pixel; ignored outside the image.
  void Set(int x, int y, Rgb color);

  // Fills columns [x0, x1) of rows [y0, y1).
  void FillRect(int x0, int y0, int x1, int y1, Rgb color);

  // A line from (x0, y0) to (x1, y1), both ends included, drawn with a square
  // brush `thickness` pixels wide centred on it.
  void DrawLine(double x0, double y0, double x1, double y1, int thickness,
                Rgb color);

  // Text with its top-left corner at (x, y), each font pixel a `scale` x
  // `scale` square; one line, no wrapping.
  void DrawText(int x, int y, absl::string_view text, int scale, Rgb color);

  // The size DrawText gives `text` at `scale`.
  static int TextWidth(absl::string_view text, int scale);
  static int TextHeight(int scale);

 private:
  int width_;
  int height_;
  std::vector<uint8_t> pixels_;
};

}  // namespace plot
}  // namespace dilated

#endif  // DILATED_BENCHMARKS_PLOT_RASTER_IMAGE_H_
