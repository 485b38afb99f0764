#include <png.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "benchmarks/plot/bitmap_font.h"
#include "benchmarks/plot/log_log_chart.h"
#include "benchmarks/plot/png_file.h"
#include "benchmarks/plot/raster_image.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace plot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr Rgb kWhite = {255, 255, 255};
constexpr Rgb kRed = {200, 0, 0};

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

TEST(BitmapFontTest, HasEveryCharacterThatNamesAndLabelsUse) {
  for (const char c :
       std::string("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789 .,:/()-_=+%*")) {
    EXPECT_TRUE(HasGlyph(c)) << "'" << c << "'";
  }
  EXPECT_FALSE(HasGlyph('~'));
}

TEST(BitmapFontTest, GlyphsAreTheDrawnShapes) {
  // "1": a stem in the middle column with a flag and a foot.
  EXPECT_THAT(Glyph('1'),
              ElementsAre(0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0, 0));
  // "p" reaches below the baseline.
  EXPECT_NE(Glyph('p')[7], 0);
  EXPECT_THAT(Glyph(' '), ElementsAre(0, 0, 0, 0, 0, 0, 0, 0, 0));
  // A character without a glyph shows as a box, not as nothing.
  EXPECT_EQ(Glyph('~')[0], 0x1F);
}

TEST(RasterImageTest, TextSetsTheGlyphsPixels) {
  RasterImage image(20, 20, kWhite);
  image.DrawText(1, 2, "1", /*scale=*/2, kRed);
  // The top row of "1" is its middle column (column 2 of 5): font pixel
  // (2, 0) covers image pixels x 5..6, y 2..3.
  EXPECT_EQ(image.At(5, 2), kRed);
  EXPECT_EQ(image.At(6, 3), kRed);
  EXPECT_EQ(image.At(3, 2), kWhite);
  EXPECT_EQ(image.At(7, 2), kWhite);
  EXPECT_EQ(RasterImage::TextWidth("11", 2), (2 * 6 - 1) * 2);
  EXPECT_EQ(RasterImage::TextHeight(2), 18);
}

TEST(RasterImageTest, LinesAndRectanglesAreClippedToTheImage) {
  RasterImage image(10, 10, kWhite);
  image.DrawLine(-5, 4, 20, 4, /*thickness=*/1, kRed);
  for (int x = 0; x < 10; ++x) {
    EXPECT_EQ(image.At(x, 4), kRed) << x;
    EXPECT_EQ(image.At(x, 3), kWhite) << x;
    EXPECT_EQ(image.At(x, 5), kWhite) << x;
  }
  image.FillRect(8, 8, 100, 100, kRed);
  EXPECT_EQ(image.At(9, 9), kRed);
  EXPECT_EQ(image.At(7, 9), kWhite);
}

TEST(PngFileTest, LibpngReadsBackThePixelsWritten) {
  RasterImage image(37, 11, kWhite);
  image.DrawText(1, 1, "8K", 1, kRed);
  image.DrawLine(0, 10, 36, 0, 2, Rgb{0, 90, 180});
  const std::string path = TempPath("round_trip.png");
  ASSERT_TRUE(WritePng(image, path).ok());

  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  ASSERT_NE(png_image_begin_read_from_file(&png, path.c_str()), 0)
      << png.message;
  png.format = PNG_FORMAT_RGB;
  ASSERT_EQ(png.width, 37u);
  ASSERT_EQ(png.height, 11u);
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(png));
  ASSERT_NE(png_image_finish_read(&png, nullptr, pixels.data(), 0, nullptr), 0)
      << png.message;
  EXPECT_EQ(pixels, image.pixels());
}

TEST(PngFileTest, AnUnwritablePathIsAnErrorNamingIt) {
  const absl::Status status =
      WritePng(RasterImage(4, 4, kWhite), "/nonexistent_dir/plot.png");
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent_dir/plot.png"));
}

TEST(LogAxisTest, MapsLogarithmsLinearly) {
  const LogAxis axis(10, 1000, 0, 200);
  EXPECT_DOUBLE_EQ(axis.ToPixel(10), 0);
  EXPECT_DOUBLE_EQ(axis.ToPixel(100), 100);
  EXPECT_DOUBLE_EQ(axis.ToPixel(1000), 200);
  // Pixels may run downwards (a y axis).
  EXPECT_DOUBLE_EQ(LogAxis(1, 100, 50, 10).ToPixel(10), 30);
}

TEST(LogAxisTest, ASingleValueLandsInTheMiddle) {
  EXPECT_DOUBLE_EQ(LogAxis(5, 5, 0, 100).ToPixel(5), 50);
}

TEST(LogTicksTest, DecadesThenFinerSteps) {
  EXPECT_THAT(LogTicks(1, 1000), ElementsAre(1, 10, 100, 1000));
  EXPECT_THAT(LogTicks(3, 40), ElementsAre(5, 10, 20));
  EXPECT_THAT(LogTicks(1.1, 4), ElementsAre(2, 3, 4));
  EXPECT_TRUE(LogTicks(0, 4).empty());
}

TEST(TickLabelTest, TokenCountsInBinaryUnitsOtherNumbersShort) {
  EXPECT_EQ(TickLabel(8192, true), "8K");
  EXPECT_EQ(TickLabel(131072, true), "128K");
  EXPECT_EQ(TickLabel(1048576, true), "1M");
  EXPECT_EQ(TickLabel(0.05, false), "0.05");
  EXPECT_EQ(TickLabel(250, false), "250");
  EXPECT_EQ(TickLabel(1000, false), "1000");
}

int CountPixels(const RasterImage& image, Rgb color) {
  int count = 0;
  for (int y = 0; y < image.height(); ++y) {
    for (int x = 0; x < image.width(); ++x) count += image.At(x, y) == color;
  }
  return count;
}

TEST(DrawLogLogPanelsTest, PanelsFillAGridAndEverySeriesIsDrawn) {
  Panel panel{
      "time",
      "n",
      {{"first", {{1024, 1}, {4096, 10}}}, {"second", {{1024, 2}, {4096, 3}}}}};
  ChartLayout layout;
  layout.panel_width = 300;
  layout.panel_height = 200;
  layout.columns = 2;
  const RasterImage two = DrawLogLogPanels("title", {panel, panel}, layout);
  const RasterImage three =
      DrawLogLogPanels("title", {panel, panel, panel}, layout);
  EXPECT_EQ(two.width(), 600);
  EXPECT_EQ(three.height() - two.height(), 200);
  // The two series' colours: the first two of the palette.
  EXPECT_GT(CountPixels(two, Rgb{31, 119, 180}), 100);
  EXPECT_GT(CountPixels(two, Rgb{255, 127, 14}), 100);
}

}  // namespace
}  // namespace plot
}  // namespace dilated
