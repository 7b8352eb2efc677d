//! Plain-text tables for the terminal, laid out by comfy-table: the two-column summaries
//! (name, value) the subcommands print at the end of a run and the comparison's grid of
//! results. No borders and no wrapping, so logs stay greppable line by line
//! (`scripts/cluster-bench` greps the bots' summary).

use std::fmt::Display;

use comfy_table::{CellAlignment, ColumnConstraint, Table, presets};

/// Spaces between two columns.
const COLUMN_GAP_SPACES: u16 = 2;

/// `name  value` rows, the names aligned in a left column.
pub fn key_values<N: Display, V: Display>(rows: impl IntoIterator<Item = (N, V)>) -> String {
    let mut table = plain_table();
    for (name, value) in rows {
        table.add_row([name.to_string(), value.to_string()]);
    }
    render(&mut table)
}

/// A header row, then one row per item; every column but the first right-aligned.
pub fn grid<const COLUMNS: usize>(
    headers: &[&str; COLUMNS],
    rows: Vec<[String; COLUMNS]>,
) -> String {
    let mut table = plain_table();
    table.set_header(headers.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut().skip(1) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    render(&mut table)
}

fn plain_table() -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table
}

/// The table's lines without trailing spaces, each ending in a newline.
fn render(table: &mut Table) -> String {
    for column in table.column_iter_mut() {
        column.set_padding((0, COLUMN_GAP_SPACES));
        column.set_constraint(ColumnConstraint::ContentWidth);
    }
    table
        .lines()
        .map(|line| line.trim_end().to_owned() + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_align_the_values_and_keep_leading_spaces() {
        let text = key_values([("rounds seen", "3"), ("  lost_event", "12")]);
        assert_eq!(text, "rounds seen   3\n  lost_event  12\n");
    }

    #[test]
    fn a_grid_has_its_header_first_and_numbers_right_aligned() {
        let rows = vec![
            ["floor".to_owned(), "5".to_owned()],
            ["aloft".to_owned(), "123".to_owned()],
        ];
        let text = grid(&["server", "conns"], rows);
        assert_eq!(text, "server  conns\nfloor       5\naloft     123\n");
    }
}
