// Log-log line charts for benchmark results: panels in a grid, each with its
// title and axes, the series of every panel drawn in one colour per name and
// named in one legend.

#ifndef DILATED_BENCHMARKS_PLOT_LOG_LOG_CHART_H_
#define DILATED_BENCHMARKS_PLOT_LOG_LOG_CHART_H_

#include <string>
#include <utility>
#include <vector>

#include "benchmarks/plot/raster_image.h"

namespace dilated {
namespace plot {

// Maps values in [min, max] (both > 0) onto pixels [from_pixel, to_pixel]
// in proportion to their logarithms. A range with min == max is widened to a
// factor of 2 either side, so that its one value lands in the middle.
class LogAxis {
 public:
  LogAxis(double min, double max, double from_pixel, double to_pixel);

  double ToPixel(double value) const;
  double min() const { return min_; }
  double max() const { return max_; }

 private:
  double min_;
  double max_;
  double from_pixel_;
  double to_pixel_;
};

// Tick values for a log axis over [min, max]: the powers of ten inside it;
// where that gives fewer than three, also their multiples by 2 and 5, and
// where that still does, by every digit 2..9.
std::vector<double> LogTicks(double min, double max);

// A short label for a tick: "8K", "128K", "1M" for multiples of 1024 (token
// counts), otherwise at most three significant digits below 1000 ("0.05",
// "2.5", "300") and whole numbers from there ("1000", "25000").
std::string TickLabel(double value, bool binary_prefix);

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y); x ascending.
};

struct Panel {
  std::string title;
  std::string x_label;
  std::vector<Series> series;
};

struct ChartLayout {
  int panel_width = 600;
  int panel_height = 400;
  int columns = 2;
  int text_scale = 2;
};

// Draws `panels` in a grid, `layout.columns` per row, under `title` and a
// legend of every series name (in order of first appearance; each name has
// one colour everywhere). Both axes are logarithmic; x ticks sit at the
// x values of the panel's points (labelled with binary prefixes), y ticks at
// LogTicks. Points with x or y <= 0 are left out.
RasterImage DrawLogLogPanels(const std::string& title,
                             const std::vector<Panel>& panels,
                             const ChartLayout& layout = ChartLayout());

}  // namespace plot
}  // namespace dilated

#endif  // DILATED_BENCHMARKS_PLOT_LOG_LOG_CHART_H_
