package tui

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/client"
)

// Screen is one page of the TUI. The root model owns a stack of screens and
// sends keys and messages to the top one.
type Screen interface {
	// Title names the screen in the header (e.g. "agents").
	Title() string
	// Load fetches the screen's data; it is also the polling refresh.
	Load() tea.Cmd
	// Update handles a message for this screen.
	Update(msg tea.Msg) (Screen, tea.Cmd)
	// View renders the screen into the size last given to SetSize.
	View() string
	SetSize(width, height int)
	// Keys are the screen's own bindings, for the help view.
	Keys() []key.Binding
	// Capturing reports that the screen reads raw text (an input or a
	// confirmation), so that the global keys must not be interpreted.
	Capturing() bool
}

// errMsg reports a failed command; the root model shows it in the status line.
type errMsg struct{ err error }

// infoMsg reports the result of an action in the status line.
type infoMsg string

// tickMsg triggers a refresh of the current screen.
type tickMsg time.Time

// pushMsg puts a screen on the stack.
type pushMsg struct{ screen Screen }

// push asks the root model to open s on top of the stack. The root model
// does it as soon as the current message is handled, before the next key:
// a key typed right after Enter goes to the screen Enter opened.
func (e *env) push(s Screen) tea.Cmd {
	e.nav = append(e.nav, pushMsg{s})
	return nil
}

func fail(err error) tea.Msg { return errMsg{err} }

// Model is the root model.
type Model struct {
	env      *env
	keys     GlobalKeys
	help     help.Model
	stack    []Screen
	showHelp bool
	status   string
	isErr    bool
	width    int
	height   int
	refresh  time.Duration
}

// New returns the root model, showing the projects screen.
func New(ctx context.Context, cfg Config) *Model {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	e := &env{ctx: ctx, api: cfg.Client, log: cfg.Logger, styles: NewStyles(cfg.Renderer), now: now}
	h := help.New()
	h.Styles.ShortKey = e.styles.Header
	h.Styles.FullKey = e.styles.Header
	h.Styles.ShortDesc = e.styles.Dim
	h.Styles.FullDesc = e.styles.Dim
	h.Styles.ShortSeparator = e.styles.Dim
	h.Styles.FullSeparator = e.styles.Dim
	m := &Model{env: e, keys: DefaultGlobalKeys(), help: h, refresh: cfg.Refresh, width: 80, height: 24}
	m.stack = []Screen{newProjectsScreen(e)}
	return m
}

func (m *Model) top() Screen { return m.stack[len(m.stack)-1] }

func (m *Model) tick() tea.Cmd {
	if m.refresh <= 0 {
		return nil
	}
	return tea.Tick(m.refresh, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Init loads the first screen and starts polling.
func (m *Model) Init() tea.Cmd {
	m.env.log.Info("tui started", "server", m.env.api.BaseURL())
	return tea.Batch(m.top().Load(), m.tick())
}

// bodyHeight is the height left to a screen: header, status and key line.
func (m *Model) bodyHeight() int { return max(0, m.height-3) }

func (m *Model) resize() {
	m.help.Width = m.width
	for _, s := range m.stack {
		s.SetSize(m.width, m.bodyHeight())
	}
}

// Update routes messages: global keys first, then the top screen.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.resize()
		return m, nil
	case tickMsg:
		return m, tea.Batch(m.top().Load(), m.tick())
	case errMsg:
		m.env.log.Warn("tui error", "err", msg.err)
		if errors.Is(msg.err, context.Canceled) {
			return m, nil
		}
		m.status, m.isErr = explain(msg.err), true
		return m, nil
	case infoMsg:
		m.env.log.Info("tui action", "result", string(msg))
		m.status, m.isErr = string(msg), false
		return m, nil
	case popMsg, pushMsg:
		return m, m.navigate(msg)
	case tea.KeyMsg:
		if msg.Type == tea.KeyCtrlC {
			return m, tea.Quit
		}
		if !m.top().Capturing() {
			if cmd, ok := m.globalKey(msg); ok {
				return m, tea.Batch(cmd, m.drainNav())
			}
		}
		if m.showHelp {
			return m, nil // the help covers the screen: its keys do nothing
		}
	}
	s, cmd := m.top().Update(msg)
	m.stack[len(m.stack)-1] = s
	return m, tea.Batch(cmd, m.drainNav())
}

// drainNav applies the pushes and pops the screens asked for.
func (m *Model) drainNav() tea.Cmd {
	var cmds []tea.Cmd
	for len(m.env.nav) > 0 {
		msg := m.env.nav[0]
		m.env.nav = m.env.nav[1:]
		cmds = append(cmds, m.navigate(msg))
	}
	return tea.Batch(cmds...)
}

// navigate pushes or pops a screen and returns the load of the new top.
func (m *Model) navigate(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case pushMsg:
		msg.screen.SetSize(m.width, m.bodyHeight())
		m.stack = append(m.stack, msg.screen)
		return msg.screen.Load()
	case popMsg:
		if len(m.stack) < 2 {
			return nil
		}
		if msg.reset != nil {
			m.closeAbove(0)
			m.stack = m.stack[:1]
			var cmds []tea.Cmd
			for _, sc := range msg.reset {
				sc.SetSize(m.width, m.bodyHeight())
				m.stack = append(m.stack, sc)
			}
			cmds = append(cmds, m.top().Load())
			// The screens below the top load when they show again (Back).
			return tea.Batch(cmds...)
		}
		m.closeAbove(len(m.stack) - 2)
		m.stack = m.stack[:len(m.stack)-1]
		var cmds []tea.Cmd
		if msg.replace != nil {
			m.closeAbove(len(m.stack) - 2)
			msg.replace.SetSize(m.width, m.bodyHeight())
			m.stack[len(m.stack)-1] = msg.replace
		}
		if msg.then != nil {
			msg.then.SetSize(m.width, m.bodyHeight())
			m.stack = append(m.stack, msg.then)
		}
		if msg.replace != nil || msg.then != nil {
			cmds = append(cmds, m.top().Load())
		}
		return tea.Batch(cmds...)
	}
	return nil
}

func (m *Model) globalKey(msg tea.KeyMsg) (tea.Cmd, bool) {
	switch {
	case key.Matches(msg, m.keys.Quit):
		return tea.Quit, true
	case key.Matches(msg, m.keys.Help):
		m.showHelp = !m.showHelp
		return nil, true
	case key.Matches(msg, m.keys.Back):
		if m.showHelp {
			m.showHelp = false
			return nil, true
		}
		if len(m.stack) > 1 {
			m.closeAbove(len(m.stack) - 2)
			m.stack = m.stack[:len(m.stack)-1]
			m.status = ""
			return m.top().Load(), true
		}
		return nil, true
	case key.Matches(msg, m.keys.Agents):
		if _, ok := m.top().(*agentsScreen); ok {
			return nil, true
		}
		return m.env.push(newAgentsScreen(m.env)), true
	case key.Matches(msg, m.keys.Projects):
		m.closeAbove(0)
		m.stack = m.stack[:1]
		m.status = ""
		return m.top().Load(), true
	}
	return nil, false
}

// closeAbove closes the screens above index i (stops their streams).
func (m *Model) closeAbove(i int) {
	for _, s := range m.stack[i+1:] {
		if c, ok := s.(interface{ Close() }); ok {
			c.Close()
		}
	}
}

// explain turns an error into one status line.
func explain(err error) string {
	var ue *client.UnreachableError
	if errors.As(err, &ue) {
		return "cannot reach " + ue.URL + ": " + ue.Err.Error()
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Message
	}
	return strings.SplitN(err.Error(), "\n", 2)[0]
}

func (m *Model) header() string {
	titles := make([]string, 0, len(m.stack))
	for _, s := range m.stack {
		titles = append(titles, s.Title())
	}
	left := m.env.styles.Title.Render("kk") + " " + m.env.styles.Header.Render(strings.Join(titles, " › "))
	right := m.env.styles.Dim.Render(m.env.api.BaseURL())
	gap := m.width - ansi.StringWidth(left) - ansi.StringWidth(right)
	if gap < 1 {
		return left
	}
	return left + strings.Repeat(" ", gap) + right
}

func (m *Model) helpGroups() [][]key.Binding {
	return [][]key.Binding{m.top().Keys(), m.keys.Bindings()}
}

// View renders header, body, status line and key line, fitted to the size.
func (m *Model) View() string {
	body := m.top().View()
	if m.showHelp {
		body = m.env.styles.Header.Render("Keys") + "\n\n" + m.help.FullHelpView(m.helpGroups())
	}
	status := ""
	if m.status != "" {
		st := m.env.styles.Info
		if m.isErr {
			st = m.env.styles.Error
		}
		status = st.Render(m.status)
	}
	// The global keys come first so that `? help` shows at any width.
	keys := m.help.ShortHelpView(append([]key.Binding{m.keys.Help, m.keys.Back, m.keys.Quit}, m.top().Keys()...))
	return fit(m.header()+"\n"+fit(body, m.width, m.bodyHeight())+"\n"+status+"\n"+keys, m.width, m.height)
}

// fit truncates every line to width and pads or cuts to exactly height lines.
func fit(s string, width, height int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > height {
		lines = lines[:height]
	}
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, width, "")
	}
	for len(lines) < height {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}
