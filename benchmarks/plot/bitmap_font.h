// A bitmap font for the labels of benchmark plots: ASCII digits, letters and
// the punctuation that benchmark names and axis labels use. Glyphs are 5
// pixels wide; capitals and digits take the top 7 rows, and the 2 rows below
// the baseline hold the descenders of g, j, p, q, y and the comma.

#ifndef DILATED_BENCHMARKS_PLOT_BITMAP_FONT_H_
#define DILATED_BENCHMARKS_PLOT_BITMAP_FONT_H_

#include <array>
#include <cstdint>

namespace dilated {
namespace plot {

inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 9;
// Horizontal distance between the left edges of two characters, in font
// pixels (one blank column between glyphs).
inline constexpr int kGlyphAdvance = kGlyphWidth + 1;

// Rows top to bottom; bit 4 of a row is its leftmost pixel.
using GlyphRows = std::array<uint8_t, kGlyphHeight>;

// Returns the glyph of `c`: blank for a space, a hollow box for a character
// the font does not have (so that a missing glyph shows instead of
// vanishing).
const GlyphRows& Glyph(char c);

// Whether the font has a glyph of its own for `c` (space included).
bool HasGlyph(char c);

}  // namespace plot
}  // namespace dilated

#endif  // DILATED_BENCHMARKS_PLOT_BITMAP_FONT_H_
