package tui

import (
	"github.com/charmbracelet/lipgloss"
)

// Styles are every style the TUI uses, in one place. They are built from one
// renderer, so that NO_COLOR (or a renderer forced to termenv.Ascii) turns
// every colour off at once; bold and reverse remain, and selection is also
// marked with a "›" so that it shows without colour.
type Styles struct {
	Header   lipgloss.Style
	Title    lipgloss.Style
	Dim      lipgloss.Style
	Error    lipgloss.Style
	Info     lipgloss.Style
	Selected lipgloss.Style
	ColHead  lipgloss.Style
	Prompt   lipgloss.Style
	// State colours a state name (agent, flow, run or job state).
	Good, Busy, Bad, Wait lipgloss.Style
}

// NewStyles builds the styles on r.
func NewStyles(r *lipgloss.Renderer) Styles {
	c := func(s string) lipgloss.TerminalColor { return lipgloss.Color(s) }
	return Styles{
		Header:   r.NewStyle().Bold(true),
		Title:    r.NewStyle().Bold(true).Foreground(c("12")),
		Dim:      r.NewStyle().Foreground(c("8")),
		Error:    r.NewStyle().Bold(true).Foreground(c("9")),
		Info:     r.NewStyle().Foreground(c("10")),
		Selected: r.NewStyle().Reverse(true),
		ColHead:  r.NewStyle().Bold(true),
		Prompt:   r.NewStyle().Bold(true).Foreground(c("11")),
		Good:     r.NewStyle().Foreground(c("10")),
		Busy:     r.NewStyle().Foreground(c("12")),
		Bad:      r.NewStyle().Foreground(c("9")),
		Wait:     r.NewStyle().Foreground(c("11")),
	}
}
