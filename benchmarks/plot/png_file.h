// Writes a RasterImage as an 8-bit RGB PNG file (through Debian's libpng).

#ifndef DILATED_BENCHMARKS_PLOT_PNG_FILE_H_
#define DILATED_BENCHMARKS_PLOT_PNG_FILE_H_

#include <string>

#include "absl/status/status.h"
#include "benchmarks/plot/raster_image.h"

namespace dilated {
namespace plot {

// Writes `image` to `path`, replacing the file. Returns an error naming the
// path when the file cannot be written.
absl::Status WritePng(const RasterImage& image, const std::string& path);

}  // namespace plot
}  // namespace dilated

#endif  // DILATED_BENCHMARKS_PLOT_PNG_FILE_H_
