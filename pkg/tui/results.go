package tui

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/client"
)

// historyLimit is how many results of a test its history shows.
const historyLimit = 60

// Filter cycles of the results screen; "" shows everything.
var (
	resultStatuses = []string{"", "failed", "error", "unstable", "passed", "not-run", "disabled"}
	resultChanges  = []string{"", "regr", "fix", "new", "no-change"}
	resultSorts    = []string{"relevancy", "name", "status"}
)

type resultKeys struct {
	Status, Change, Sort, Name, History key.Binding
}

func defaultResultKeys() resultKeys {
	return resultKeys{
		History: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "history")),
		Status:  key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "status filter")),
		Change:  key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "change filter")),
		Sort:    key.NewBinding(key.WithKeys("o"), key.WithHelp("o", "sort")),
		Name:    key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "name filter")),
	}
}

// resultsMsg carries a run's test results for one filter.
type resultsMsg struct {
	to      *resultsScreen
	query   client.ResultsQuery
	results []api.TestResult
}

// resultsScreen lists a run's test results with filters (status, change,
// name) and a sort (relevancy first); Enter opens a test's history.
type resultsScreen struct {
	env      *env
	run      api.RunDetail
	branchID int64
	label    string
	keys     resultKeys
	status   int
	change   int
	sort     int
	name     string
	input    textinput.Model
	typing   bool
	results  []api.TestResult
	table    Table
	ready    bool
}

func newResultsScreen(e *env, f api.FlowDetail, r api.RunDetail) *resultsScreen {
	in := textinput.New()
	in.Prompt = "name: "
	in.Placeholder = "part of a test name, or a glob"
	in.Cursor.SetMode(cursor.CursorStatic)
	s := &resultsScreen{env: e, run: r, branchID: f.BranchID, keys: defaultResultKeys(), input: in,
		label: fmt.Sprintf("%s %d %s", strings.ToUpper(string(f.Kind)), f.KindSeq, r.Name)}
	s.table = Table{styles: &e.styles, Columns: []Column{
		{Title: "STATUS", Width: 8},
		{Title: "CHANGE", Width: 9},
		{Title: "TEST", Width: 40},
		{Title: "JOB", Width: 14, Drop: 2},
		{Title: "AGE", Width: 4, Drop: 3},
		{Title: "INSTAB", Width: 6, Drop: 4},
		{Title: "RELEV", Width: 5, Drop: 5},
		{Title: "TIME", Width: 7, Drop: 1},
		{Title: "MESSAGE", Width: 40, Drop: 6},
	}}
	return s
}

func (s *resultsScreen) Title() string { return "results" }
func (s *resultsScreen) Keys() []key.Binding {
	return []key.Binding{s.keys.History, s.keys.Status, s.keys.Change, s.keys.Sort, s.keys.Name}
}
func (s *resultsScreen) Capturing() bool { return s.typing }

func (s *resultsScreen) SetSize(w, h int) {
	s.input.Width = max(10, w-10)
	// The test name takes what the other shown columns leave.
	s.table.Columns[2].Width = 40
	s.table.SetSize(w, max(0, h-2))
	used := 2
	for _, i := range s.table.visible() {
		used += s.table.Columns[i].Width + 1
	}
	if w > used {
		s.table.Columns[2].Width += w - used
	}
}

func (s *resultsScreen) query() client.ResultsQuery {
	q := client.ResultsQuery{Status: resultStatuses[s.status], Change: resultChanges[s.change], Sort: resultSorts[s.sort]}
	if s.name != "" {
		q.Name = s.name
		if !strings.ContainsAny(q.Name, "*?") {
			q.Name = "*" + q.Name + "*"
		}
	}
	return q
}

func (s *resultsScreen) Load() tea.Cmd {
	e, id, q := s.env, s.run.ID, s.query()
	return func() tea.Msg {
		var rs []api.TestResult
		err := e.call(func(ctx context.Context) (err error) {
			rs, err = e.api.RunResults(ctx, id, q)
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("results of run %d: %w", id, err))
		}
		return resultsMsg{to: s, query: q, results: rs}
	}
}

func testStatusStyle(st *Styles, status string) *lipgloss.Style {
	switch ci.TestStatus(status) {
	case ci.TestPassed:
		return &st.Good
	case ci.TestFailed, ci.TestError:
		return &st.Bad
	case ci.TestUnstable:
		return &st.Wait
	}
	return &st.Dim
}

func (s *resultsScreen) Update(msg tea.Msg) (Screen, tea.Cmd) {
	switch msg := msg.(type) {
	case resultsMsg:
		if msg.to != s || msg.query != s.query() {
			return s, nil
		}
		s.ready = true
		s.results = msg.results
		st := &s.env.styles
		rows := make([][]Cell, 0, len(msg.results))
		for _, r := range msg.results {
			rows = append(rows, []Cell{
				{Text: r.Status, Style: testStatusStyle(st, r.Status)},
				{Text: orDash(r.Change)},
				{Text: r.Name},
				{Text: r.JobName},
				{Text: strconv.Itoa(r.Age)},
				{Text: strconv.Itoa(r.Instability)},
				{Text: strconv.Itoa(r.Relevancy)},
				{Text: fmt.Sprintf("%.1fs", r.Duration)},
				{Text: firstLine(r.Message)},
			})
		}
		s.table.SetRows(rows)
	case tea.KeyMsg:
		if s.typing {
			switch msg.Type {
			case tea.KeyEsc:
				s.typing = false
				s.input.Blur()
				return s, nil
			case tea.KeyEnter:
				s.typing = false
				s.input.Blur()
				s.name = strings.TrimSpace(s.input.Value())
				return s, s.reload()
			}
			var cmd tea.Cmd
			s.input, cmd = s.input.Update(msg)
			return s, cmd
		}
		if moveKey(&s.table, msg) {
			return s, nil
		}
		switch {
		case key.Matches(msg, s.keys.Status):
			s.status = (s.status + 1) % len(resultStatuses)
			return s, s.reload()
		case key.Matches(msg, s.keys.Change):
			s.change = (s.change + 1) % len(resultChanges)
			return s, s.reload()
		case key.Matches(msg, s.keys.Sort):
			s.sort = (s.sort + 1) % len(resultSorts)
			return s, s.reload()
		case key.Matches(msg, s.keys.Name):
			s.typing = true
			s.input.SetValue(s.name)
			return s, s.input.Focus()
		case key.Matches(msg, s.keys.History) && len(s.results) > 0:
			return s, s.env.push(newHistoryScreen(s.env, s.branchID, s.results[s.table.Cursor].Name))
		}
	}
	return s, nil
}

func (s *resultsScreen) reload() tea.Cmd {
	s.table.GoTo(0)
	return s.Load()
}

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

func (s *resultsScreen) View() string {
	st := s.env.styles
	or := func(v, all string) string {
		if v == "" {
			return all
		}
		return v
	}
	head := s.label + st.Dim.Render(fmt.Sprintf("  status: %s · change: %s · sort: %s · name: %s",
		or(resultStatuses[s.status], "all"), or(resultChanges[s.change], "all"), resultSorts[s.sort], or(s.name, "any")))
	if s.typing {
		head = s.input.View()
	}
	if !s.ready {
		return head + "\n\n" + st.Dim.Render("loading results…")
	}
	if len(s.results) == 0 {
		note := "no test results match: f, c and / change the filters"
		if s.status == 0 && s.change == 0 && s.name == "" {
			note = "this run has no test results (a step's tool reports them, e.g. pytest or junit)"
		}
		return head + "\n\n" + st.Dim.Render(note)
	}
	return head + "\n\n" + s.table.View()
}

// historyMsg carries a test's history in a branch.
type historyMsg struct {
	to      *historyScreen
	results []api.TestResult
}

// historyScreen shows the results of one test in a branch, newest first,
// under a sparkline of its statuses and one of its durations.
type historyScreen struct {
	env      *env
	branchID int64
	name     string
	results  []api.TestResult
	table    Table
	width    int
	ready    bool
}

func newHistoryScreen(e *env, branchID int64, name string) *historyScreen {
	s := &historyScreen{env: e, branchID: branchID, name: name}
	s.table = Table{styles: &e.styles, Columns: []Column{
		{Title: "FLOW", Width: 9},
		{Title: "STATUS", Width: 8},
		{Title: "CHANGE", Width: 9},
		{Title: "TIME", Width: 8},
		{Title: "JOB", Width: 14, Drop: 1},
		{Title: "WHEN", Width: 8, Drop: 2},
		{Title: "MESSAGE", Width: 60, Drop: 3},
	}}
	return s
}

func (s *historyScreen) Title() string       { return "history" }
func (s *historyScreen) Keys() []key.Binding { return nil }
func (s *historyScreen) Capturing() bool     { return false }
func (s *historyScreen) SetSize(w, h int) {
	s.width = w
	s.table.SetSize(w, max(0, h-5))
}

func (s *historyScreen) Load() tea.Cmd {
	e, b, name := s.env, s.branchID, s.name
	return func() tea.Msg {
		var rs []api.TestResult
		err := e.call(func(ctx context.Context) (err error) {
			rs, err = e.api.TestHistory(ctx, b, name, historyLimit)
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("history of %s: %w", name, err))
		}
		return historyMsg{to: s, results: rs}
	}
}

func (s *historyScreen) Update(msg tea.Msg) (Screen, tea.Cmd) {
	switch msg := msg.(type) {
	case historyMsg:
		if msg.to != s {
			return s, nil
		}
		s.ready = true
		s.results = msg.results
		st := &s.env.styles
		rows := make([][]Cell, 0, len(msg.results))
		for _, r := range msg.results {
			rows = append(rows, []Cell{
				{Text: fmt.Sprintf("%s %d", strings.ToUpper(r.FlowKind), r.FlowID)},
				{Text: r.Status, Style: testStatusStyle(st, r.Status)},
				{Text: orDash(r.Change)},
				{Text: fmt.Sprintf("%.1fs", r.Duration)},
				{Text: r.JobName},
				{Text: ago(s.env.now(), &r.Created)},
				{Text: firstLine(r.Message)},
			})
		}
		s.table.SetRows(rows)
	case tea.KeyMsg:
		moveKey(&s.table, msg)
	}
	return s, nil
}

// sparkBars are the eight heights of a sparkline.
var sparkBars = []rune("▁▂▃▄▅▆▇█")

// statusGlyph is a test status as one cell that reads without colour.
func statusGlyph(status string) string {
	switch ci.TestStatus(status) {
	case ci.TestPassed:
		return "▪"
	case ci.TestFailed, ci.TestError:
		return "✗"
	case ci.TestUnstable:
		return "~"
	}
	return "·"
}

// sparklines renders the statuses and the durations of rs (newest first)
// oldest to newest, at most width cells each.
func sparklines(st *Styles, rs []api.TestResult, width int) (string, string) {
	n := min(len(rs), max(0, width))
	var status, dur strings.Builder
	hi := 0.0
	for _, r := range rs[:n] {
		hi = max(hi, r.Duration)
	}
	for i := n - 1; i >= 0; i-- {
		r := rs[i]
		status.WriteString(testStatusStyle(st, r.Status).Render(statusGlyph(r.Status)))
		b := 0
		if hi > 0 {
			b = min(len(sparkBars)-1, int(r.Duration/hi*float64(len(sparkBars)-1)+0.5))
		}
		dur.WriteRune(sparkBars[b])
	}
	return status.String(), dur.String()
}

func (s *historyScreen) View() string {
	st := s.env.styles
	head := st.Header.Render(s.name)
	if !s.ready {
		return head + "\n\n" + st.Dim.Render("loading history…")
	}
	if len(s.results) == 0 {
		return head + "\n\n" + st.Dim.Render("no results of this test in the branch")
	}
	pass := 0
	hi := 0.0
	for _, r := range s.results {
		if r.Status == string(ci.TestPassed) {
			pass++
		}
		hi = max(hi, r.Duration)
	}
	const label = 10
	status, dur := sparklines(&st, s.results, s.width-label)
	summary := st.Dim.Render(fmt.Sprintf("%d results, %d passed, max %.1fs; oldest → newest", len(s.results), pass, hi))
	return head + "  " + summary + "\n" +
		st.Dim.Render(pad("status", label)) + status + "\n" +
		st.Dim.Render(pad("duration", label)) + dur + "\n\n" + s.table.View()
}
