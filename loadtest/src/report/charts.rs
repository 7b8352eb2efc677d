//! The comparison's bar charts, drawn with plotters' SVG backend: one horizontal bar per
//! server and connection count, scaled to the largest value, the floor's bars grey,
//! each bar labelled with its value and its ratio to the floor.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width of a chart, in pixels.
const CHART_WIDTH_PX: u32 = 880;
/// Width of the label column left of the bars, in pixels (room for
/// "python-websockets (unavailable) × 10000").
const LABEL_WIDTH_PX: u32 = 290;
/// Height of one bar's row, in pixels.
const ROW_HEIGHT_PX: u32 = 28;
/// Height of the caption and the x axis together, in pixels.
const FRAME_HEIGHT_PX: u32 = 80;
/// Height of the x axis labels, in pixels.
const AXIS_HEIGHT_PX: u32 = 24;
/// The x axis reaches this many times the largest value, leaving room right of the
/// longest bar for its value and ratio.
const VALUE_ROOM_FACTOR: f64 = 1.6;
/// Space kept above and below each bar within its row, in pixels.
const BAR_MARGIN_PX: u32 = 4;
/// Gap between a bar's end and its value, in pixels.
const VALUE_GAP_PX: i32 = 6;
/// Font sizes of the caption and of the labels, in pixels.
const CAPTION_FONT_PX: u32 = 16;
const LABEL_FONT_PX: u32 = 13;
/// The floor's bars and the others'.
const FLOOR_COLOR: RGBColor = RGBColor(0x88, 0x88, 0x88);
const SERVER_COLOR: RGBColor = RGBColor(0x2a, 0x7a, 0xb8);

/// One bar: its label, value and ratio to the floor.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub ratio: Option<f64>,
    /// The floor's bar, drawn in grey.
    pub is_floor: bool,
}

impl Bar {
    /// `16.00 µs (2.00× floor)`: the value and, when known, its ratio to the floor.
    fn value_text(&self, unit: &str) -> String {
        let ratio = (self.ratio).map_or(String::new(), |ratio| format!(" ({ratio:.2}× floor)"));
        format!("{:.2} {unit}{ratio}", self.value)
    }
}

/// A horizontal bar chart titled `title (unit)`, as an SVG document; bars scale to the
/// largest value (negative ones draw empty), the first bar on top.
pub fn bar_chart(title: &str, unit: &str, bars: &[Bar]) -> anyhow::Result<String> {
    let rows = u32::try_from(bars.len().max(1))?;
    let size = (CHART_WIDTH_PX, FRAME_HEIGHT_PX + ROW_HEIGHT_PX * rows);
    let largest = bars.iter().map(|bar| bar.value).fold(0.0, f64::max);
    let x_end = if largest > 0.0 {
        largest * VALUE_ROOM_FACTOR
    } else {
        1.0
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{title} ({unit})"), ("sans-serif", CAPTION_FONT_PX))
            .margin(8)
            .x_label_area_size(AXIS_HEIGHT_PX)
            .y_label_area_size(LABEL_WIDTH_PX)
            .build_cartesian_2d(0.0..x_end, (0..rows - 1).into_segmented())
            .map_err(drawing)?;
        // Row 0 is the bottom of the chart: bar `index` goes in row `rows - 1 - index`.
        let row_of = |index: usize| rows - 1 - u32::try_from(index).expect("rows fit u32");
        let label_of = |segment: &SegmentValue<u32>| row_label(bars, segment);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(bars.len().max(1))
            .y_label_formatter(&label_of)
            .label_style(("sans-serif", LABEL_FONT_PX))
            .draw()
            .map_err(drawing)?;
        chart
            .draw_series(
                (bars.iter().enumerate()).map(|(index, bar)| rectangle(bar, row_of(index))),
            )
            .map_err(drawing)?;
        let value_style = TextStyle::from(("sans-serif", LABEL_FONT_PX).into_font())
            .pos(Pos::new(HPos::Left, VPos::Center));
        chart
            .draw_series(bars.iter().enumerate().map(|(index, bar)| {
                let at = (bar.value.max(0.0), SegmentValue::CenterOf(row_of(index)));
                EmptyElement::at(at)
                    + Text::new(bar.value_text(unit), (VALUE_GAP_PX, 0), value_style.clone())
            }))
            .map_err(drawing)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// The label of the bar drawn in the row `segment` names (row 0 at the bottom: the
/// last bar).
fn row_label(bars: &[Bar], segment: &SegmentValue<u32>) -> String {
    let (SegmentValue::CenterOf(row) | SegmentValue::Exact(row)) = segment else {
        return String::new();
    };
    let index =
        (bars.len().checked_sub(1)).and_then(|last| last.checked_sub(usize::try_from(*row).ok()?));
    index
        .and_then(|index| bars.get(index))
        .map_or(String::new(), |bar| bar.label.clone())
}

/// The bar of `bar` in `row`, grey for the floor.
fn rectangle(bar: &Bar, row: u32) -> Rectangle<(f64, SegmentValue<u32>)> {
    let color = if bar.is_floor {
        FLOOR_COLOR
    } else {
        SERVER_COLOR
    };
    let corners = [
        (0.0, SegmentValue::Exact(row)),
        (bar.value.max(0.0), SegmentValue::Exact(row + 1)),
    ];
    let mut rectangle = Rectangle::new(corners, color.filled());
    rectangle.set_margin(BAR_MARGIN_PX, BAR_MARGIN_PX, 0, 0);
    rectangle
}

/// plotters' drawing error, which borrows the backend, as an owned error.
fn drawing(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: f64, ratio: Option<f64>) -> Bar {
        Bar {
            label: label.to_owned(),
            value,
            ratio,
            is_floor: label.starts_with("floor"),
        }
    }

    /// The widths of the filled rectangles of `color`, in drawing order.
    fn bar_widths(svg: &str, color: &str) -> Vec<f64> {
        svg.split("<rect")
            .filter(|rect| rect.contains(&format!("fill=\"{color}\"")))
            .filter_map(|rect| {
                let width = rect.split("width=\"").nth(1)?.split('"').next()?;
                width.parse().ok()
            })
            .collect()
    }

    #[test]
    fn bars_scale_to_the_largest_and_carry_their_ratio() {
        let bars = [
            bar("floor × 2000", 8.0, Some(1.0)),
            bar("aloft × 2000", 16.0, Some(2.0)),
            bar("a<b", -1.0, None),
        ];
        let svg = bar_chart("CPU", "µs", &bars).unwrap();
        let floor = bar_widths(&svg, "#888888");
        let servers = bar_widths(&svg, "#2A7AB8");
        assert_eq!(floor.len(), 1, "{svg}");
        assert!(!servers.is_empty(), "{svg}");
        let longest = servers.iter().copied().fold(0.0, f64::max);
        assert!(
            (longest / floor[0] - 2.0).abs() < 0.1,
            "{floor:?} {servers:?}"
        );
        assert!(svg.contains("16.00 µs (2.00× floor)"), "{svg}");
        assert!(svg.contains("8.00 µs (1.00× floor)"), "{svg}");
        assert!(svg.contains("a&lt;b"), "{svg}");
        assert!(svg.contains("CPU (µs)"), "{svg}");
    }

    #[test]
    fn a_chart_without_bars_is_still_a_document() {
        let svg = bar_chart("RSS", "KiB", &[]).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    }
}
