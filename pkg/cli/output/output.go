// Package output prints command results: JSON, YAML or aligned tables (with
// colours only on a terminal).
package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/kraken-go/kk/pkg/cli/iostreams"
)

// Format is an output format selected with -o.
type Format string

const (
	Table Format = "table"
	JSON  Format = "json"
	YAML  Format = "yaml"
)

// ParseFormat checks an -o value; "" means table.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", Table:
		return Table, nil
	case JSON, YAML:
		return Format(s), nil
	}
	return "", fmt.Errorf("invalid output format %q: want table, json or yaml", s)
}

// WriteList prints items: as a JSON or YAML array (never null, so scripts can
// rely on a list) or, for tables, as a table with the headers and one row per
// item.
func WriteList[T any](ios *iostreams.IOStreams, f Format, items []T, headers []string, row func(T) []string) error {
	if f != Table {
		if items == nil {
			items = []T{}
		}
		return Write(ios.Out, f, items)
	}
	t := NewTable(ios, headers...)
	for _, it := range items {
		for _, field := range row(it) {
			t.AddField(field)
		}
		t.EndRow()
	}
	return t.Render()
}

// Write prints v as JSON (indented) or YAML. The YAML has the JSON's keys in
// the JSON's order.
func Write(w io.Writer, f Format, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	if f != YAML {
		b = append(b, '\n')
		_, err = w.Write(b)
		return err
	}
	y, err := JSONToYAML(b)
	if err != nil {
		return err
	}
	_, err = w.Write(y)
	return err
}

// JSONToYAML converts a JSON document to block-style YAML, keeping key order.
func JSONToYAML(b []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("encode output as yaml: %w", err)
	}
	resetStyle(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("encode output as yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode output as yaml: %w", err)
	}
	return buf.Bytes(), nil
}

// resetStyle drops the flow and quoting styles that come from JSON so the
// encoder picks block style and quotes only where YAML needs it.
func resetStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		resetStyle(c)
	}
}

// TablePrinter prints rows in aligned columns. Colours are applied after
// alignment, so they never shift columns; they are dropped when the streams
// say colours are off.
type TablePrinter struct {
	ios     *iostreams.IOStreams
	headers []string
	rows    [][]cell
	cur     []cell
}

type cell struct{ text, color string }

// NewTable starts a table. Headers may be empty (a key/value listing).
func NewTable(ios *iostreams.IOStreams, headers ...string) *TablePrinter {
	return &TablePrinter{ios: ios, headers: headers}
}

// AddField adds a cell to the current row; "" is shown as "-".
func (t *TablePrinter) AddField(text string) { t.AddColorField(text, "") }

// AddColorField adds a cell shown in color (see iostreams.Color) on a terminal.
func (t *TablePrinter) AddColorField(text, color string) {
	if text == "" {
		text = "-"
	}
	text = strings.ReplaceAll(text, "\n", " ")
	t.cur = append(t.cur, cell{text, color})
}

// EndRow finishes the current row.
func (t *TablePrinter) EndRow() {
	t.rows = append(t.rows, t.cur)
	t.cur = nil
}

// Render writes the table to the streams' Out.
func (t *TablePrinter) Render() error {
	if len(t.cur) > 0 {
		t.EndRow()
	}
	all := t.rows
	if len(t.headers) > 0 {
		h := make([]cell, len(t.headers))
		for i, s := range t.headers {
			h[i] = cell{strings.ToUpper(s), "bold"}
		}
		all = append([][]cell{h}, all...)
	}
	var widths []int
	for _, r := range all {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	var b strings.Builder
	for _, r := range all {
		for i, c := range r {
			b.WriteString(t.ios.Color(c.color, c.text))
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text)+2))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(t.ios.Out, b.String())
	return err
}

// StateColor is the colour of a state or result name.
func StateColor(state string) string {
	switch state {
	case "ok", "idle", "completed":
		return "green"
	case "failed", "error", "timeout", "cancelled", "no_agents", "server_timeout",
		"agent_lost", "lost_contact", "missing":
		return "red"
	case "running", "in_progress", "building", "preparing", "assigned":
		return "yellow"
	case "manual", "discovered", "disabled", "queued", "pending", "skipped":
		return "gray"
	}
	return ""
}

// Time formats a timestamp for a table: relative on a terminal, RFC 3339
// otherwise (stable for scripts). The zero time is "".
func Time(ios *iostreams.IOStreams, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	if !ios.IsStdoutTTY() {
		return t.Format(time.RFC3339)
	}
	return Ago(time.Since(t))
}

// TimePtr is Time for optional timestamps.
func TimePtr(ios *iostreams.IOStreams, t *time.Time) string {
	if t == nil {
		return ""
	}
	return Time(ios, *t)
}

// Ago renders a duration in the past as "5s ago", "3m ago", "2h ago", "4d ago".
func Ago(d time.Duration) string {
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// Duration renders seconds as 1m05s, 3.2s; 0 is "".
func Duration(seconds float64) string {
	if seconds <= 0 {
		return ""
	}
	d := time.Duration(seconds * float64(time.Second))
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
