#include "benchmarks/plot/png_file.h"

#include <png.h>

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "benchmarks/plot/raster_image.h"

namespace dilated {
namespace plot {

absl::Status WritePng(const RasterImage& image, const std::string& path) {
  // libpng's simplified API: one call, no setjmp, errors in the struct.
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width());
  png.height = static_cast<png_uint_32>(image.height());
  png.format = PNG_FORMAT_RGB;
  const int ok = png_image_write_to_file(
      &png, path.c_str(), /*convert_to_8bit=*/0, image.pixels().data(),
      /*row_stride=*/image.width() * 3, /*colormap=*/nullptr);
  const std::string message = png.message;
  png_image_free(&png);
  if (!ok) {
    return absl::UnavailableError(
        absl::StrCat("cannot write the PNG file \"", path, "\": ", message));
  }
  return absl::OkStatus();
}

}  // namespace plot
}  // namespace dilated
