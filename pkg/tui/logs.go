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
	"github.com/kraken-go/kk/pkg/client"
)

// maxLogLines bounds the lines the log viewer keeps (a window of the log):
// following, the first lines are dropped; scrolling back, the last ones.
const maxLogLines = 20000

// logWindow is how many bytes of the log one read fetches: the tail when the
// viewer opens, then each earlier range as the user scrolls back. A log of
// any size costs the viewer at most maxLogLines lines.
const logWindow = 1 << 20

// logChunk bounds one read of the log stream.
const logChunk = 64 << 10

// stepHeaderPrefix starts the line kkd writes before each step's output.
const stepHeaderPrefix = "==> step "

var errorLine = regexp.MustCompile(`(?i)\b(error|failed|fatal|panic)\b`)

type logKeys struct {
	Search, Next, FirstError, Top, Bottom, NextStep, PrevStep key.Binding
}

func defaultLogKeys() logKeys {
	return logKeys{
		Search:     key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "search")),
		Next:       key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "next match")),
		FirstError: key.NewBinding(key.WithKeys("E"), key.WithHelp("E", "first error")),
		NextStep:   key.NewBinding(key.WithKeys("]"), key.WithHelp("]", "next step")),
		PrevStep:   key.NewBinding(key.WithKeys("["), key.WithHelp("[", "prev step")),
		Top:        key.NewBinding(key.WithKeys("g"), key.WithHelp("g", "top")),
		Bottom:     key.NewBinding(key.WithKeys("G"), key.WithHelp("G", "bottom, follow")),
	}
}

// logTailMsg carries the tail of the log read when the viewer (re)opens.
type logTailMsg struct {
	to     *logScreen
	gen    int
	offset int64
	data   []byte
}

// logOpenedMsg hands the opened follow stream to the screen.
type logOpenedMsg struct {
	to  *logScreen
	gen int
	rc  io.ReadCloser
	br  *bufio.Reader
}

// logChunkMsg carries bytes read from the stream; err is io.EOF at its end.
type logChunkMsg struct {
	to   *logScreen
	gen  int
	data []byte
	err  error
}

// logOlderMsg carries the range of the log just before the kept lines.
type logOlderMsg struct {
	to     *logScreen
	gen    int
	offset int64
	data   []byte
}

// logScreen shows a job's log. It opens on the log's tail (logWindow bytes)
// and follows it: lines are appended as they arrive and the view follows the
// end until the user scrolls up. Scrolling up past the first kept line reads
// the range before it; the viewer never holds more than maxLogLines lines, so
// a huge log is never loaded whole.
type logScreen struct {
	env  *env
	job  api.JobDetail
	keys logKeys
	ctx  context.Context
	// Close cancels ctx; each (re)opening has its own stream context.
	cancel       context.CancelFunc
	streamCancel context.CancelFunc
	gen          int // bumped by each reopening: older messages are dropped
	opened       bool
	loaded       bool // the tail arrived
	rc           io.ReadCloser
	br           *bufio.Reader
	live         bool // the follow stream appends to lines
	done         bool // the stream reached the log's end (the job completed)
	cut          bool // lines at the end were dropped by scrolling back
	fetching     bool // a read of an earlier range is pending
	toTop        bool // show the first line once the earlier range arrived
	toPrevStep   bool // [ goes on once the earlier range arrived
	base         int64
	partial      string
	lines        []string
	vp           viewport.Model
	follow       bool
	search       textinput.Model
	typing       bool
	query        string
	match        int
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
	return []key.Binding{s.keys.Search, s.keys.Next, s.keys.FirstError, s.keys.NextStep, s.keys.PrevStep, s.keys.Top, s.keys.Bottom}
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

// Load opens the log once; polling does not reopen it.
func (s *logScreen) Load() tea.Cmd {
	if s.opened {
		return nil
	}
	s.opened = true
	return s.open()
}

// open (re)starts the viewer on the log's tail, then follows it.
func (s *logScreen) open() tea.Cmd {
	s.stopStream()
	s.gen++
	s.loaded, s.live, s.done, s.cut, s.fetching, s.toTop, s.toPrevStep = false, false, false, false, false, false, false
	s.lines, s.partial, s.base = nil, "", 0
	s.follow = true
	ctx, c, id, gen := s.ctx, s.env.api, s.job.ID, s.gen
	return func() tea.Msg {
		var msg logTailMsg
		err := s.env.callCtx(ctx, func(ctx context.Context) error {
			part, err := c.LogsTail(ctx, id, nil, logWindow)
			if err != nil {
				return err
			}
			defer part.Body.Close()
			data, err := io.ReadAll(io.LimitReader(part.Body, logWindow+1))
			msg = logTailMsg{to: s, gen: gen, offset: part.Offset, data: data}
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("logs of job %d: %w", id, err))
		}
		return msg
	}
}

// followFrom opens the follow stream at a byte offset.
func (s *logScreen) followFrom(offset int64) tea.Cmd {
	ctx, cancel := context.WithCancel(s.ctx)
	s.streamCancel = cancel
	c, id, gen := s.env.api, s.job.ID, s.gen
	return func() tea.Msg {
		part, err := c.LogsRange(ctx, id, client.LogRange{Offset: offset, Follow: true})
		if err != nil {
			return fail(fmt.Errorf("follow the log of job %d: %w", id, err))
		}
		return logOpenedMsg{to: s, gen: gen, rc: part.Body, br: bufio.NewReaderSize(part.Body, logChunk)}
	}
}

func (s *logScreen) stopStream() {
	if s.streamCancel != nil {
		s.streamCancel()
		s.streamCancel = nil
	}
	if s.rc != nil {
		s.rc.Close()
		s.rc, s.br = nil, nil
	}
	s.live = false
}

// read reads what the stream has (at most logChunk bytes).
func (s *logScreen) read() tea.Cmd {
	rc, br, gen := s.rc, s.br, s.gen
	return func() tea.Msg {
		buf := make([]byte, logChunk)
		n, err := br.Read(buf)
		if err != nil {
			rc.Close()
		}
		return logChunkMsg{to: s, gen: gen, data: buf[:n], err: err}
	}
}

// older reads the range of the log before the first kept line.
func (s *logScreen) older() tea.Cmd {
	if s.fetching || s.base == 0 || !s.loaded {
		return nil
	}
	s.fetching = true
	from := max(0, s.base-s.olderWindow())
	ctx, c, id, gen, n := s.ctx, s.env.api, s.job.ID, s.gen, s.base-from
	return func() tea.Msg {
		var msg logOlderMsg
		err := s.env.callCtx(ctx, func(ctx context.Context) error {
			part, err := c.LogsRange(ctx, id, client.LogRange{Offset: from, Limit: n})
			if err != nil {
				return err
			}
			defer part.Body.Close()
			data, err := io.ReadAll(io.LimitReader(part.Body, n))
			msg = logOlderMsg{to: s, gen: gen, offset: from, data: data}
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("earlier logs of job %d: %w", id, err))
		}
		return msg
	}
}

// olderWindow is how many bytes to read before the kept lines: about the
// half window of lines that prepend keeps, by the kept lines' mean length.
func (s *logScreen) olderWindow() int64 {
	if len(s.lines) == 0 {
		return logWindow
	}
	var n int64
	for _, l := range s.lines {
		n += int64(len(l)) + 1
	}
	return min(logWindow, max(64<<10, n/int64(len(s.lines))*maxLogLines/2))
}

// append adds bytes at the end; the first lines go when over maxLogLines.
func (s *logScreen) append(data []byte) {
	parts := strings.Split(string(data), "\n")
	parts[0] = s.partial + parts[0]
	s.partial = parts[len(parts)-1]
	s.lines = append(s.lines, parts[:len(parts)-1]...)
	if over := len(s.lines) - maxLogLines; over > 0 {
		for _, l := range s.lines[:over] {
			s.base += int64(len(l)) + 1
		}
		s.lines = append(s.lines[:0:0], s.lines[over:]...)
		if !s.follow {
			s.vp.SetYOffset(max(0, s.vp.YOffset-over))
		}
	}
	s.refreshContent()
}

// prepend adds the range [offset, base) before the kept lines; the last
// lines go when over maxLogLines, which stops following.
func (s *logScreen) prepend(offset int64, data []byte) {
	text := string(data)
	if offset > 0 {
		// The range starts inside a line: keep whole lines only.
		// (A range inside one huge line shows as a line of its own.)
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			offset += int64(i) + 1
			text = text[i+1:]
		}
	}
	added := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if text == "" {
		added = nil
	}
	// Keep the lines next to the view: at most half the window is added,
	// so that scrolling back walks the log without a gap.
	if over := len(added) - maxLogLines/2; over > 0 {
		for _, l := range added[:over] {
			offset += int64(len(l)) + 1
		}
		added = added[over:]
	}
	s.base = offset
	s.lines = append(added, s.lines...)
	if over := len(s.lines) - maxLogLines; over > 0 {
		s.stopStream()
		s.cut, s.partial = true, ""
		s.lines = s.lines[:maxLogLines]
	}
	s.follow = false
	y := s.vp.YOffset + len(added)
	if s.toTop {
		y, s.toTop = 0, false
	}
	s.refreshContent()
	s.vp.SetYOffset(y)
}

func (s *logScreen) allLines() []string {
	if s.partial == "" {
		return s.lines
	}
	return append(s.lines[:len(s.lines):len(s.lines)], s.partial)
}

func isStepHeader(l string) bool { return strings.HasPrefix(l, stepHeaderPrefix) }

func (s *logScreen) refreshContent() {
	lines := s.allLines()
	styled := make([]string, len(lines))
	for i, l := range lines {
		if isStepHeader(l) {
			l = s.env.styles.Header.Render(l)
		}
		styled[i] = l
	}
	s.vp.SetContent(strings.Join(styled, "\n"))
	if s.follow {
		s.vp.GotoBottom()
	}
}

func (s *logScreen) Update(msg tea.Msg) (Screen, tea.Cmd) {
	switch msg := msg.(type) {
	case logTailMsg:
		if msg.to != s || msg.gen != s.gen {
			return s, nil
		}
		s.loaded = true
		s.base = msg.offset
		data := msg.data
		if msg.offset > 0 {
			// Begin at a whole line.
			if i := strings.IndexByte(string(data), '\n'); i >= 0 {
				s.base += int64(i) + 1
				data = data[i+1:]
			}
		}
		s.append(data)
		return s, s.followFrom(msg.offset + int64(len(msg.data)))
	case logOpenedMsg:
		if msg.to != s || msg.gen != s.gen || s.cut {
			msg.rc.Close()
			return s, nil
		}
		// The request carries the stream's context: cancelling it ends a pending read.
		s.rc, s.br, s.live = msg.rc, msg.br, true
		return s, s.read()
	case logChunkMsg:
		if msg.to != s || msg.gen != s.gen || !s.live {
			return s, nil
		}
		s.append(msg.data)
		if msg.err != nil {
			s.done, s.live = true, false
			if !errors.Is(msg.err, io.EOF) && s.ctx.Err() == nil {
				return s, func() tea.Msg { return fail(fmt.Errorf("logs of job %d: %w", s.job.ID, msg.err)) }
			}
			return s, nil
		}
		return s, s.read()
	case logOlderMsg:
		if msg.to != s || msg.gen != s.gen {
			return s, nil
		}
		s.fetching = false
		s.prepend(msg.offset, msg.data)
		if s.toPrevStep {
			// Go on reading back until a step header shows (or the start).
			if s.prevStep() {
				s.toPrevStep = false
				return s, nil
			}
			cmd := s.older()
			if cmd == nil {
				s.toPrevStep = false
				return s, func() tea.Msg { return infoMsg("no earlier step") }
			}
			return s, cmd
		}
		return s, nil
	case tea.KeyMsg:
		if s.typing {
			return s.updateSearch(msg)
		}
		return s.updateKey(msg)
	}
	return s, nil
}

func (s *logScreen) updateKey(msg tea.KeyMsg) (Screen, tea.Cmd) {
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
		return s, func() tea.Msg { return infoMsg("no error line in the loaded log") }
	case key.Matches(msg, s.keys.NextStep):
		lines := s.allLines()
		for i := s.vp.YOffset + 1; i < len(lines); i++ {
			if isStepHeader(lines[i]) {
				s.jump(i)
				return s, nil
			}
		}
		return s, func() tea.Msg { return infoMsg("no later step in the loaded log") }
	case key.Matches(msg, s.keys.PrevStep):
		if s.prevStep() {
			return s, nil
		}
		cmd := s.older()
		s.toPrevStep = cmd != nil
		if cmd == nil {
			return s, func() tea.Msg { return infoMsg("no earlier step") }
		}
		return s, cmd
	case key.Matches(msg, s.keys.Top):
		s.follow = false
		s.vp.GotoTop()
		cmd := s.older()
		s.toTop = cmd != nil
		return s, cmd
	case key.Matches(msg, s.keys.Bottom):
		if s.cut {
			return s, s.open()
		}
		s.follow = true
		s.vp.GotoBottom()
		return s, nil
	}
	atTop := s.vp.AtTop()
	var cmd tea.Cmd
	s.vp, cmd = s.vp.Update(msg)
	s.follow = s.vp.AtBottom() && !s.cut
	if atTop && s.vp.AtTop() && isUpKey(msg) {
		return s, tea.Batch(cmd, s.older())
	}
	if s.cut && s.vp.AtBottom() && isDownKey(msg) {
		return s, tea.Batch(cmd, s.open())
	}
	return s, cmd
}

// prevStep jumps to the step header above the first line in view.
func (s *logScreen) prevStep() bool {
	lines := s.allLines()
	for i := min(s.vp.YOffset, len(lines)) - 1; i >= 0; i-- {
		if isStepHeader(lines[i]) {
			s.jump(i)
			return true
		}
	}
	return false
}

func isUpKey(msg tea.KeyMsg) bool {
	switch msg.String() {
	case "up", "k", "pgup", "b", "ctrl+u", "u":
		return true
	}
	return false
}

func isDownKey(msg tea.KeyMsg) bool {
	switch msg.String() {
	case "down", "j", "pgdown", "f", " ", "ctrl+d", "d":
		return true
	}
	return false
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
	return func() tea.Msg { return infoMsg(fmt.Sprintf("%q not found in the loaded log", q)) }
}

func (s *logScreen) jump(line int) {
	s.follow = false
	s.vp.SetYOffset(line)
}

// currentStep names the step of the first line in view: the last step
// header at or above it.
func (s *logScreen) currentStep() string {
	lines := s.allLines()
	for i := min(s.vp.YOffset, len(lines)-1); i >= 0; i-- {
		if isStepHeader(lines[i]) {
			return strings.TrimPrefix(lines[i], "==> ")
		}
	}
	return ""
}

func (s *logScreen) View() string {
	st := s.env.styles
	var foot string
	switch {
	case s.typing:
		foot = s.search.View()
	default:
		state := "following"
		switch {
		case s.done && !s.cut:
			state = "end of log"
		case s.cut:
			state = "paused (G: back to the end)"
		case !s.follow:
			state = "paused (G to follow)"
		}
		if s.toPrevStep {
			state = "reading back to the previous step…"
		}
		parts := []string{state, fmt.Sprintf("%d lines", len(s.lines))}
		if s.base > 0 {
			parts = append(parts, fmt.Sprintf("from byte %d", s.base))
		}
		if step := s.currentStep(); step != "" {
			parts = append(parts, step)
		}
		if s.query != "" && s.match >= 0 {
			parts = append(parts, fmt.Sprintf("/%s at line %d", s.query, s.match+1))
		}
		foot = st.Dim.Render(strings.Join(parts, " · "))
	}
	if !s.loaded || (len(s.lines) == 0 && s.partial == "" && !s.done) {
		return st.Dim.Render("waiting for log lines…") + strings.Repeat("\n", max(0, s.vp.Height)) + foot
	}
	return s.vp.View() + "\n" + foot
}
