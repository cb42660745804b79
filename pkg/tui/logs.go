package tui

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/kraken-go/kk/pkg/api"
)

// maxLogLines bounds the lines the log viewer keeps: a huge log keeps its
// last maxLogLines lines (a ring), the earlier ones are counted and dropped.
const maxLogLines = 20000

// logChunk bounds one read of the log stream.
const logChunk = 64 << 10

var errorLine = regexp.MustCompile(`(?i)\b(error|failed|fatal|panic)\b`)

type logKeys struct {
	Search, Next, FirstError, Top, Bottom key.Binding
}

func defaultLogKeys() logKeys {
	return logKeys{
		Search:     key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "search")),
		Next:       key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "next match")),
		FirstError: key.NewBinding(key.WithKeys("E"), key.WithHelp("E", "first error")),
		Top:        key.NewBinding(key.WithKeys("g"), key.WithHelp("g", "top")),
		Bottom:     key.NewBinding(key.WithKeys("G"), key.WithHelp("G", "bottom, follow")),
	}
}

// logOpenedMsg hands the opened stream to the screen.
type logOpenedMsg struct {
	to *logScreen
	rc io.ReadCloser
	br *bufio.Reader
}

// logChunkMsg carries lines read from the stream; err is io.EOF at its end.
type logChunkMsg struct {
	to    *logScreen
	lines []string
	err   error
}

// logScreen follows a job's log: lines are appended as they arrive and the
// view follows the end until the user scrolls up.
type logScreen struct {
	env     *env
	job     api.JobDetail
	keys    logKeys
	ctx     context.Context
	cancel  context.CancelFunc
	opened  bool
	rc      io.ReadCloser
	br      *bufio.Reader
	done    bool
	partial string
	lines   []string
	dropped int
	vp      viewport.Model
	follow  bool
	search  textinput.Model
	typing  bool
	query   string
	match   int
}

func newLogScreen(e *env, j api.JobDetail) *logScreen {
	ctx, cancel := context.WithCancel(e.ctx)
	in := textinput.New()
	in.Prompt = "/"
	in.Cursor.SetMode(cursor.CursorStatic)
	return &logScreen{env: e, job: j, keys: defaultLogKeys(), ctx: ctx, cancel: cancel,
		vp: viewport.New(80, 20), follow: true, search: in, match: -1}
}

func (s *logScreen) Title() string { return fmt.Sprintf("job %d %s", s.job.ID, s.job.Name) }
func (s *logScreen) Keys() []key.Binding {
	return []key.Binding{s.keys.Search, s.keys.Next, s.keys.FirstError, s.keys.Top, s.keys.Bottom}
}
func (s *logScreen) Capturing() bool { return s.typing }

func (s *logScreen) SetSize(w, h int) {
	s.vp.Width, s.vp.Height = w, max(1, h-1)
	s.search.Width = max(1, w-2)
	if s.follow {
		s.vp.GotoBottom()
	}
}

// Close stops following the log (the screen left the stack).
func (s *logScreen) Close() { s.cancel() }

// Load opens the stream once; polling does not reopen it.
func (s *logScreen) Load() tea.Cmd {
	if s.opened {
		return nil
	}
	s.opened = true
	ctx, c, id := s.ctx, s.env.api, s.job.ID
	return func() tea.Msg {
		rc, err := c.Logs(ctx, id, nil, true)
		if err != nil {
			return fail(fmt.Errorf("logs of job %d: %w", id, err))
		}
		return logOpenedMsg{to: s, rc: rc, br: bufio.NewReaderSize(rc, logChunk)}
	}
}

// read reads what the stream has (at most logChunk bytes) as lines.
func (s *logScreen) read() tea.Cmd {
	rc, br := s.rc, s.br
	return func() tea.Msg {
		buf := make([]byte, logChunk)
		n, err := br.Read(buf)
		if err != nil {
			rc.Close()
		}
		return logChunkMsg{to: s, lines: strings.Split(string(buf[:n]), "\n"), err: err}
	}
}

func (s *logScreen) append(parts []string) {
	parts[0] = s.partial + parts[0]
	s.partial = parts[len(parts)-1]
	s.lines = append(s.lines, parts[:len(parts)-1]...)
	if over := len(s.lines) - maxLogLines; over > 0 {
		s.lines = append(s.lines[:0:0], s.lines[over:]...)
		s.dropped += over
	}
	s.refreshContent()
}

func (s *logScreen) allLines() []string {
	if s.partial == "" {
		return s.lines
	}
	return append(s.lines[:len(s.lines):len(s.lines)], s.partial)
}

func (s *logScreen) refreshContent() {
	s.vp.SetContent(strings.Join(s.allLines(), "\n"))
	if s.follow {
		s.vp.GotoBottom()
	}
}

func (s *logScreen) Update(msg tea.Msg) (Screen, tea.Cmd) {
	switch msg := msg.(type) {
	case logOpenedMsg:
		if msg.to != s {
			msg.rc.Close()
			return s, nil
		}
		// The request carries s.ctx: Close cancels it, which ends a pending read.
		s.rc, s.br = msg.rc, msg.br
		return s, s.read()
	case logChunkMsg:
		if msg.to != s {
			return s, nil
		}
		s.append(msg.lines)
		if msg.err != nil {
			s.done = true
			if !errors.Is(msg.err, io.EOF) && s.ctx.Err() == nil {
				return s, func() tea.Msg { return fail(fmt.Errorf("logs of job %d: %w", s.job.ID, msg.err)) }
			}
			return s, nil
		}
		return s, s.read()
	case tea.KeyMsg:
		if s.typing {
			return s.updateSearch(msg)
		}
		switch {
		case key.Matches(msg, s.keys.Search):
			s.typing = true
			s.search.SetValue("")
			return s, s.search.Focus()
		case key.Matches(msg, s.keys.Next):
			return s, s.find(s.match + 1)
		case key.Matches(msg, s.keys.FirstError):
			for i, l := range s.allLines() {
				if errorLine.MatchString(l) {
					s.jump(i)
					return s, nil
				}
			}
			return s, func() tea.Msg { return infoMsg("no error line in the log") }
		case key.Matches(msg, s.keys.Top):
			s.follow = false
			s.vp.GotoTop()
			return s, nil
		case key.Matches(msg, s.keys.Bottom):
			s.follow = true
			s.vp.GotoBottom()
			return s, nil
		}
		var cmd tea.Cmd
		s.vp, cmd = s.vp.Update(msg)
		s.follow = s.vp.AtBottom()
		return s, cmd
	}
	return s, nil
}

func (s *logScreen) updateSearch(msg tea.KeyMsg) (Screen, tea.Cmd) {
	switch msg.Type {
	case tea.KeyEsc:
		s.typing = false
		s.search.Blur()
		return s, nil
	case tea.KeyEnter:
		s.typing = false
		s.search.Blur()
		s.query = s.search.Value()
		return s, s.find(0)
	}
	var cmd tea.Cmd
	s.search, cmd = s.search.Update(msg)
	return s, cmd
}

// find jumps to the first line at or after from that contains the query.
func (s *logScreen) find(from int) tea.Cmd {
	if s.query == "" {
		return nil
	}
	lines := s.allLines()
	for k := 0; k < len(lines); k++ {
		i := (from + k) % len(lines)
		if strings.Contains(lines[i], s.query) {
			s.match = i
			s.jump(i)
			return nil
		}
	}
	q := s.query
	return func() tea.Msg { return infoMsg(fmt.Sprintf("%q not found", q)) }
}

func (s *logScreen) jump(line int) {
	s.follow = false
	s.vp.SetYOffset(line)
}

func (s *logScreen) View() string {
	st := s.env.styles
	var foot string
	switch {
	case s.typing:
		foot = s.search.View()
	default:
		state := "following"
		if s.done {
			state = "end of log"
		} else if !s.follow {
			state = "paused (G to follow)"
		}
		foot = st.Dim.Render(fmt.Sprintf("%s · %d lines", state, len(s.lines)+s.dropped))
		if s.dropped > 0 {
			foot += st.Dim.Render(fmt.Sprintf(" (first %d not kept)", s.dropped))
		}
		if s.query != "" && s.match >= 0 {
			foot += st.Dim.Render(fmt.Sprintf(" · /%s at line %d", s.query, s.match+1+s.dropped))
		}
	}
	if !s.opened || (len(s.lines) == 0 && s.partial == "" && !s.done) {
		return st.Dim.Render("waiting for log lines…") + strings.Repeat("\n", max(0, s.vp.Height)) + foot
	}
	return s.vp.View() + "\n" + foot
}
