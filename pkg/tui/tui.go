// Package tui is `kk tui`: a terminal UI over kkd's JSON API (pkg/client),
// never over the store. A root Model keeps a stack of screens (Esc goes
// back), a status line for errors and results, and the help view generated
// from the keymaps. Every I/O happens in a tea.Cmd that returns a message;
// data is refreshed by polling the API with tea.Tick.
package tui

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/kraken-go/kk/pkg/client"
)

// DefaultRefresh is how often the current screen polls the API.
const DefaultRefresh = time.Second

// requestTimeout bounds one API call made by a screen.
const requestTimeout = 10 * time.Second

// Config is what the TUI needs.
type Config struct {
	Client *client.Client
	// Logger receives the TUI's log; it must not write to the terminal.
	Logger *slog.Logger
	// Renderer renders the styles; its colour profile decides colours
	// (lipgloss.NewRenderer(out) follows NO_COLOR and the terminal).
	Renderer *lipgloss.Renderer
	// Refresh is the polling period; 0 disables polling (tests).
	Refresh time.Duration
	// Now returns the current time (time.Now when nil).
	Now func() time.Time
}

// env is shared by the screens: the API client, the logger, the styles and
// the clock. It holds the program's context so that commands stop with it.
type env struct {
	ctx    context.Context
	api    *client.Client
	log    *slog.Logger
	styles Styles
	now    func() time.Time
	// nav are the pushes and pops asked for while handling a message.
	nav []tea.Msg
}

// call runs fn with a bounded context derived from the program's.
func (e *env) call(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(e.ctx, requestTimeout)
	defer cancel()
	return fn(ctx)
}

// logReadTimeout bounds one read of a part of a log: kkd reads a huge log
// up to the part asked for.
const logReadTimeout = time.Minute

// callCtx runs fn with a context derived from ctx (a screen's own, which it
// cancels when it closes), bounded by logReadTimeout.
func (e *env) callCtx(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, logReadTimeout)
	defer cancel()
	return fn(ctx)
}

// NewRenderer returns a renderer for out; noColor forces the 1-bit profile.
func NewRenderer(out io.Writer, noColor bool) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(out)
	if noColor {
		r.SetColorProfile(termenv.Ascii)
	}
	return r
}

// Run runs the TUI on in/out until the user quits or ctx ends.
func Run(ctx context.Context, cfg Config, in io.Reader, out io.Writer) error {
	m := New(ctx, cfg)
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen())
	_, err := p.Run()
	if err != nil {
		return fmt.Errorf("tui: %w", err)
	}
	return nil
}
