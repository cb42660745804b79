package tui

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// Column of a Table. Columns with a higher Drop are left out first when the
// table is too narrow; Drop 0 columns are always shown (and truncated).
type Column struct {
	Title string
	Width int
	Drop  int
}

// Cell is one table cell: its text and an optional style (a state colour).
type Cell struct {
	Text  string
	Style *lipgloss.Style
}

// Table is a cursor-driven table that never renders wider than its width nor
// taller than its height: cells are truncated, rows scroll with the cursor.
type Table struct {
	Columns []Column
	Rows    [][]Cell
	Cursor  int
	offset  int
	width   int
	height  int
	styles  *Styles
}

// SetSize sets the area the table renders into.
func (t *Table) SetSize(w, h int) { t.width, t.height = w, h }

// SetRows replaces the rows and keeps the cursor in range.
func (t *Table) SetRows(rows [][]Cell) {
	t.Rows = rows
	t.clamp()
}

// Move moves the cursor by delta rows.
func (t *Table) Move(delta int) {
	t.Cursor += delta
	t.clamp()
}

// GoTo puts the cursor on row i (clamped); -1 means the last row.
func (t *Table) GoTo(i int) {
	if i < 0 {
		i = len(t.Rows) - 1
	}
	t.Cursor = i
	t.clamp()
}

func (t *Table) clamp() {
	if t.Cursor >= len(t.Rows) {
		t.Cursor = len(t.Rows) - 1
	}
	if t.Cursor < 0 {
		t.Cursor = 0
	}
}

// visible returns the indexes of the columns that fit in the width.
func (t *Table) visible() []int {
	idx := make([]int, 0, len(t.Columns))
	for i := range t.Columns {
		idx = append(idx, i)
	}
	total := func() int {
		n := 2 // cursor marker
		for _, i := range idx {
			n += t.Columns[i].Width + 1
		}
		return n
	}
	for total() > t.width {
		worst, at := 0, -1
		for k, i := range idx {
			if t.Columns[i].Drop > worst {
				worst, at = t.Columns[i].Drop, k
			}
		}
		if at < 0 {
			break
		}
		idx = append(idx[:at], idx[at+1:]...)
	}
	return idx
}

func pad(s string, w int) string {
	s = ansi.Truncate(s, w, "…")
	if n := ansi.StringWidth(s); n < w {
		s += strings.Repeat(" ", w-n)
	}
	return s
}

// View renders the header line and as many rows as fit.
func (t *Table) View() string {
	if t.width <= 0 || t.height <= 0 {
		return ""
	}
	cols := t.visible()
	var b strings.Builder
	head := make([]string, 0, len(cols))
	for _, i := range cols {
		head = append(head, pad(t.Columns[i].Title, t.Columns[i].Width))
	}
	b.WriteString(ansi.Truncate("  "+t.styles.ColHead.Render(strings.Join(head, " ")), t.width, ""))
	rowsH := t.height - 1
	if rowsH <= 0 {
		return b.String()
	}
	if len(t.Rows) == 0 {
		b.WriteString("\n  " + t.styles.Dim.Render("(none)"))
		return b.String()
	}
	if t.Cursor < t.offset {
		t.offset = t.Cursor
	}
	if t.Cursor >= t.offset+rowsH {
		t.offset = t.Cursor - rowsH + 1
	}
	if m := len(t.Rows) - rowsH; t.offset > m {
		t.offset = max(0, m)
	}
	for r := t.offset; r < len(t.Rows) && r < t.offset+rowsH; r++ {
		cells := make([]string, 0, len(cols))
		for _, i := range cols {
			var c Cell
			if i < len(t.Rows[r]) {
				c = t.Rows[r][i]
			}
			txt := pad(c.Text, t.Columns[i].Width)
			if c.Style != nil && r != t.Cursor {
				txt = c.Style.Render(txt)
			}
			cells = append(cells, txt)
		}
		line := strings.Join(cells, " ")
		marker := "  "
		if r == t.Cursor {
			marker = "› "
			line = t.styles.Selected.Render(line)
		}
		b.WriteString("\n" + ansi.Truncate(marker+line, t.width, ""))
	}
	return b.String()
}
