#include "benchmarks/plot/log_log_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "benchmarks/plot/raster_image.h"

namespace dilated {
namespace plot {
namespace {

constexpr Rgb kWhite = {255, 255, 255};
constexpr Rgb kInk = {40, 40, 40};
constexpr Rgb kFrame = {90, 90, 90};
constexpr Rgb kGrid = {225, 225, 225};

// Distinct colours for up to ten series; more repeat them.
constexpr Rgb kPalette[] = {
    {31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
    {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
    {188, 189, 34},  {23, 190, 207},
};

// Room left of a panel's plot area for the y tick labels, in characters, and
// the space around everything else, in pixels.
constexpr int kLeftMarginChars = 7;
constexpr int kMarginPixels = 12;

// Every series name in order of first appearance.
std::vector<std::string> SeriesNames(const std::vector<Panel>& panels) {
  std::vector<std::string> names;
  for (const Panel& panel : panels) {
    for (const Series& series : panel.series) {
      if (std::find(names.begin(), names.end(), series.name) == names.end()) {
        names.push_back(series.name);
      }
    }
  }
  return names;
}

Rgb ColorOf(const std::vector<std::string>& names, const std::string& name) {
  const auto it = std::find(names.begin(), names.end(), name);
  const size_t index = static_cast<size_t>(it - names.begin());
  return kPalette[index % (sizeof(kPalette) / sizeof(kPalette[0]))];
}

bool Plottable(const std::pair<double, double>& point) {
  return point.first > 0 && point.second > 0 && std::isfinite(point.first) &&
         std::isfinite(point.second);
}

// The legend: a colour swatch and the name of each series, in rows that fit
// `width`. Returns the height it took.
int DrawLegend(RasterImage* image, int top, int width,
               const std::vector<std::string>& names, int scale) {
  const int text_height = RasterImage::TextHeight(scale);
  int x = kMarginPixels;
  int y = top;
  for (const std::string& name : names) {
    const int item_width =
        text_height + scale * 3 + RasterImage::TextWidth(name, scale);
    if (x > kMarginPixels && x + item_width > width - kMarginPixels) {
      x = kMarginPixels;
      y += text_height * 2;
    }
    image->FillRect(x, y, x + text_height, y + text_height,
                    ColorOf(names, name));
    image->DrawText(x + text_height + scale * 3, y, name, scale, kInk);
    x += item_width + text_height * 2;
  }
  return y + text_height - top;
}

void DrawPanel(RasterImage* image, int left, int top, const Panel& panel,
               const std::vector<std::string>& names,
               const ChartLayout& layout) {
  const int scale = layout.text_scale;
  const int text_height = RasterImage::TextHeight(scale);
  const int char_width = RasterImage::TextWidth("0", scale) + scale;
  image->DrawText(left + kMarginPixels, top + kMarginPixels, panel.title, scale,
                  kInk);

  // The plot area.
  const int x0 = left + kLeftMarginChars * char_width;
  const int x1 = left + layout.panel_width - kMarginPixels * 2;
  const int y0 = top + kMarginPixels * 2 + text_height;
  const int y1 =
      top + layout.panel_height - kMarginPixels * 2 - text_height * 3;

  std::vector<double> xs;
  double y_min = std::numeric_limits<double>::infinity();
  double y_max = 0.0;
  for (const Series& series : panel.series) {
    for (const auto& point : series.points) {
      if (!Plottable(point)) continue;
      xs.push_back(point.first);
      y_min = std::min(y_min, point.second);
      y_max = std::max(y_max, point.second);
    }
  }
  image->FillRect(x0, y0, x1 + 1, y1 + 1, kWhite);
  if (xs.empty()) {
    image->DrawText(x0 + char_width, y0 + char_width, "no data", scale, kInk);
    return;
  }
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());

  // A little room in log space so that markers stay off the frame.
  const double x_pad = std::pow(xs.back() / xs.front(), 0.06);
  const double y_pad = std::pow(y_max / y_min, 0.08);
  const LogAxis x_axis(xs.front() / std::max(x_pad, 1.1),
                       xs.back() * std::max(x_pad, 1.1), x0, x1);
  const LogAxis y_axis(y_min / std::max(y_pad, 1.1),
                       y_max * std::max(y_pad, 1.1), y1, y0);

  for (double x : xs) {
    const double px = x_axis.ToPixel(x);
    image->DrawLine(px, y0, px, y1, 1, kGrid);
    const std::string label = TickLabel(x, /*binary_prefix=*/true);
    image->DrawText(
        static_cast<int>(px) - RasterImage::TextWidth(label, scale) / 2,
        y1 + scale * 4, label, scale, kInk);
  }
  for (double y : LogTicks(y_axis.min(), y_axis.max())) {
    const double py = y_axis.ToPixel(y);
    image->DrawLine(x0, py, x1, py, 1, kGrid);
    const std::string label = TickLabel(y, /*binary_prefix=*/false);
    image->DrawText(x0 - scale * 4 - RasterImage::TextWidth(label, scale),
                    static_cast<int>(py) - text_height / 2, label, scale, kInk);
  }
  image->DrawText(
      (x0 + x1) / 2 - RasterImage::TextWidth(panel.x_label, scale) / 2,
      y1 + scale * 4 + text_height * 2, panel.x_label, scale, kInk);

  // The frame, then the series over the grid.
  image->DrawLine(x0, y0, x1, y0, 1, kFrame);
  image->DrawLine(x0, y1, x1, y1, 1, kFrame);
  image->DrawLine(x0, y0, x0, y1, 1, kFrame);
  image->DrawLine(x1, y0, x1, y1, 1, kFrame);
  for (const Series& series : panel.series) {
    const Rgb color = ColorOf(names, series.name);
    const std::pair<double, double>* previous = nullptr;
    for (const auto& point : series.points) {
      if (!Plottable(point)) continue;
      const double px = x_axis.ToPixel(point.first);
      const double py = y_axis.ToPixel(point.second);
      if (previous != nullptr) {
        image->DrawLine(x_axis.ToPixel(previous->first),
                        y_axis.ToPixel(previous->second), px, py, 2, color);
      }
      image->FillRect(static_cast<int>(px) - 3, static_cast<int>(py) - 3,
                      static_cast<int>(px) + 4, static_cast<int>(py) + 4,
                      color);
      previous = &point;
    }
  }
}

}  // namespace

LogAxis::LogAxis(double min, double max, double from_pixel, double to_pixel)
    : min_(min), max_(max), from_pixel_(from_pixel), to_pixel_(to_pixel) {
  if (!(max_ > min_)) {
    min_ /= 2;
    max_ *= 2;
  }
}

double LogAxis::ToPixel(double value) const {
  const double t =
      (std::log(value) - std::log(min_)) / (std::log(max_) - std::log(min_));
  return from_pixel_ + t * (to_pixel_ - from_pixel_);
}

std::vector<double> LogTicks(double min, double max) {
  std::vector<double> ticks;
  if (!(min > 0) || !(max >= min)) return ticks;
  const int first = static_cast<int>(std::floor(std::log10(min)));
  const int last = static_cast<int>(std::ceil(std::log10(max)));
  const std::vector<std::vector<double>> factor_sets = {
      {1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
  for (const std::vector<double>& factors : factor_sets) {
    ticks.clear();
    for (int exponent = first; exponent <= last; ++exponent) {
      const double decade = std::pow(10.0, exponent);
      for (const double factor : factors) {
        const double tick = factor * decade;
        // A relative margin, so that 1e-3 from pow() still counts as inside.
        if (tick >= min * (1 - 1e-9) && tick <= max * (1 + 1e-9)) {
          ticks.push_back(tick);
        }
      }
    }
    if (ticks.size() >= 3) break;
  }
  return ticks;
}

std::string TickLabel(double value, bool binary_prefix) {
  if (binary_prefix && value >= 1024) {
    const double mebi = value / (1024.0 * 1024.0);
    if (mebi >= 1 && mebi == std::floor(mebi)) {
      return absl::StrCat(static_cast<long long>(mebi), "M");
    }
    const double kibi = value / 1024.0;
    if (kibi == std::floor(kibi)) {
      return absl::StrCat(static_cast<long long>(kibi), "K");
    }
  }
  // %.3g would print 1000 as "1e+03".
  if (value >= 1000) return absl::StrFormat("%.0f", value);
  return absl::StrFormat("%.3g", value);
}

RasterImage DrawLogLogPanels(const std::string& title,
                             const std::vector<Panel>& panels,
                             const ChartLayout& layout) {
  const int scale = layout.text_scale;
  const int columns = std::max(layout.columns, 1);
  const int rows =
      std::max(1, static_cast<int>((panels.size() + columns - 1) / columns));
  const int width = columns * layout.panel_width;
  const std::vector<std::string> names = SeriesNames(panels);

  // Lay out the header on a scratch image first to learn its height.
  const int text_height = RasterImage::TextHeight(scale);
  RasterImage scratch(width, 1, kWhite);
  const int legend_top = kMarginPixels * 2 + text_height;
  const int header_height =
      legend_top + DrawLegend(&scratch, legend_top, width, names, scale) +
      kMarginPixels;

  RasterImage image(width, header_height + rows * layout.panel_height,
                    Rgb{246, 246, 246});
  image.DrawText(kMarginPixels, kMarginPixels, title, scale, kInk);
  DrawLegend(&image, legend_top, width, names, scale);
  for (size_t i = 0; i < panels.size(); ++i) {
    const int column = static_cast<int>(i) % columns;
    const int row = static_cast<int>(i) / columns;
    DrawPanel(&image, column * layout.panel_width,
              header_height + row * layout.panel_height, panels[i], names,
              layout);
  }
  return image;
}

}  // namespace plot
}  // namespace dilated
