package tui

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// flowsLimit bounds how many flows the dashboard shows (and details it fetches).
const flowsLimit = 15

var (
	tabKey     = key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "CI/DEV"))
	pickKey    = key.NewBinding(key.WithKeys("b"), key.WithHelp("b", "other branch"))
	newFlowKey = key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "new flow"))
)

// flowsMsg carries a branch's flows of one kind with their runs.
type flowsMsg struct {
	to    *flowsScreen
	kind  ci.FlowKind
	flows []api.FlowDetail
}

// flowsScreen is the branch dashboard: the last flows of one kind, each with
// a box per run coloured by its state.
type flowsScreen struct {
	env     *env
	project string
	branch  ci.Branch
	kind    ci.FlowKind
	flows   []api.FlowDetail
	table   Table
	ready   bool
}

func newFlowsScreen(e *env, project string, b ci.Branch) *flowsScreen {
	s := &flowsScreen{env: e, project: project, branch: b, kind: ci.FlowCI}
	s.table = Table{styles: &e.styles, Columns: []Column{
		{Title: "FLOW", Width: 7},
		{Title: "STATE", Width: 11},
		{Title: "RUNS", Width: 24},
		{Title: "STARTED", Width: 9, Drop: 2},
		{Title: "LABEL", Width: 20, Drop: 1},
	}}
	return s
}

func (s *flowsScreen) Title() string { return s.project + "/" + s.branch.Name }
func (s *flowsScreen) Keys() []key.Binding {
	return []key.Binding{openKey, tabKey, newFlowKey, pickKey}
}
func (s *flowsScreen) Capturing() bool  { return false }
func (s *flowsScreen) SetSize(w, h int) { s.table.SetSize(w, max(0, h-2)) }

func (s *flowsScreen) Load() tea.Cmd {
	e, kind, branchID := s.env, s.kind, s.branch.ID
	return func() tea.Msg {
		var out []api.FlowDetail
		err := e.call(func(ctx context.Context) (err error) {
			out, err = e.api.ListFlowsWithRuns(ctx, branchID, kind, flowsLimit)
			if err != nil {
				return fmt.Errorf("list flows: %w", err)
			}
			return nil
		})
		if err != nil {
			return fail(err)
		}
		return flowsMsg{to: s, kind: kind, flows: out}
	}
}

func (s *flowsScreen) Update(msg tea.Msg) (Screen, tea.Cmd) {
	switch msg := msg.(type) {
	case flowsMsg:
		if msg.to != s || msg.kind != s.kind {
			return s, nil
		}
		s.ready = true
		s.setFlows(msg.flows)
	case tea.KeyMsg:
		if moveKey(&s.table, msg) {
			return s, nil
		}
		switch {
		case key.Matches(msg, tabKey):
			if s.kind == ci.FlowCI {
				s.kind = ci.FlowDEV
			} else {
				s.kind = ci.FlowCI
			}
			s.ready = false
			s.table.GoTo(0)
			return s, s.Load()
		case key.Matches(msg, pickKey):
			return s, s.env.push(newPickerScreen(s.env, s.project+"/"+s.branch.Name))
		case key.Matches(msg, newFlowKey):
			return s, s.env.push(newFlowFormScreen(s.env, s.project, s.branch, s.kind))
		case key.Matches(msg, openKey) && len(s.flows) > 0:
			return s, s.env.push(newFlowScreen(s.env, s.flows[s.table.Cursor].ID))
		}
	}
	return s, nil
}

func (s *flowsScreen) setFlows(flows []api.FlowDetail) {
	s.flows = flows
	st := &s.env.styles
	rows := make([][]Cell, 0, len(flows))
	for _, f := range flows {
		boxes := make([]string, 0, len(f.Runs))
		for _, r := range f.Runs {
			g, style := runGlyph(st, r)
			boxes = append(boxes, style.Render(g))
		}
		rows = append(rows, []Cell{
			{Text: fmt.Sprintf("%s %d", strings.ToUpper(string(f.Kind)), f.KindSeq)},
			{Text: flowState(f), Style: flowStyle(st, f)},
			{Text: strings.Join(boxes, " ")},
			{Text: ago(s.env.now(), &f.Created)},
			{Text: f.Label},
		})
	}
	s.table.SetRows(rows)
}

func (s *flowsScreen) View() string {
	st := s.env.styles
	tab := func(k ci.FlowKind, name string) string {
		if s.kind == k {
			return st.Selected.Render(" " + name + " ")
		}
		return st.Dim.Render(" " + name + " ")
	}
	head := tab(ci.FlowCI, "CI") + " " + tab(ci.FlowDEV, "DEV") + st.Dim.Render("   ■ ok  ✗ failed  ▶ running  □ manual")
	if !s.ready {
		return head + "\n\n" + st.Dim.Render("loading flows…")
	}
	if len(s.flows) == 0 {
		return head + "\n\n" + st.Dim.Render(fmt.Sprintf("no %s flows: n starts one (or `kk flow run %s/%s`)", strings.ToUpper(string(s.kind)), s.project, s.branch.Name))
	}
	return head + "\n\n" + s.table.View()
}

// runFailed reports a run with a failed job.
func runFailed(r api.RunDetail) bool {
	if r.JobsError > 0 {
		return true
	}
	for _, j := range r.Jobs {
		if j.State == ci.JobCompleted && !j.Covered && !j.Result.Ok() {
			return true
		}
	}
	return false
}

// runGlyph is a run's box: a glyph that reads without colour, and its colour.
func runGlyph(st *Styles, r api.RunDetail) (string, lipgloss.Style) {
	switch {
	case r.State == ci.RunManual:
		return "□", st.Dim
	case runFailed(r):
		return "✗", st.Bad
	case r.State == ci.RunInProgress:
		return "▶", st.Busy
	}
	return "■", st.Good
}

func flowFailed(f api.FlowDetail) bool {
	for _, r := range f.Runs {
		if runFailed(r) {
			return true
		}
	}
	return false
}

func flowState(f api.FlowDetail) string {
	if f.State == ci.FlowCompleted {
		if flowFailed(f) {
			return "failed"
		}
		return "ok"
	}
	return string(f.State)
}

func flowStyle(st *Styles, f api.FlowDetail) *lipgloss.Style {
	switch {
	case flowFailed(f):
		return &st.Bad
	case f.State == ci.FlowCompleted:
		return &st.Good
	}
	return &st.Busy
}

// flowKeys are the flow screen's bindings.
type flowKeys struct {
	Open, Cancel, Rerun, Start, CancelRun, RerunRun, Results key.Binding
}

func defaultFlowKeys() flowKeys {
	return flowKeys{
		Open:      key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "logs")),
		Cancel:    key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "cancel job")),
		Rerun:     key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "rerun job")),
		Start:     key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "start manual run")),
		CancelRun: key.NewBinding(key.WithKeys("C"), key.WithHelp("C", "cancel run")),
		RerunRun:  key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "rerun run")),
		Results:   key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "test results")),
	}
}

// flowMsg carries a flow's details.
type flowMsg struct {
	to   *flowScreen
	flow api.FlowDetail
}

// flowRow is one row of the flow screen: a job of a run, or a run without jobs.
type flowRow struct {
	run api.RunDetail
	job *api.JobDetail
}

// flowScreen shows a flow's runs and their jobs, and acts on them.
type flowScreen struct {
	env   *env
	id    int64
	keys  flowKeys
	flow  api.FlowDetail
	rows  []flowRow
	table Table
	ready bool
}

func newFlowScreen(e *env, id int64) *flowScreen {
	s := &flowScreen{env: e, id: id, keys: defaultFlowKeys()}
	s.table = Table{styles: &e.styles, Columns: []Column{
		{Title: "STAGE", Width: 14},
		{Title: "JOB", Width: 18},
		{Title: "STATE", Width: 10},
		{Title: "AGENT", Width: 12, Drop: 2},
		{Title: "SYSTEM", Width: 12, Drop: 3},
		{Title: "TIME", Width: 7, Drop: 1},
		{Title: "ID", Width: 6, Drop: 4},
	}}
	return s
}

func (s *flowScreen) Title() string {
	if !s.ready {
		return "flow " + strconv.FormatInt(s.id, 10)
	}
	return fmt.Sprintf("%s %d", strings.ToUpper(string(s.flow.Kind)), s.flow.KindSeq)
}

func (s *flowScreen) Keys() []key.Binding {
	return []key.Binding{s.keys.Open, s.keys.Cancel, s.keys.Rerun, s.keys.Start, s.keys.CancelRun, s.keys.RerunRun, s.keys.Results}
}
func (s *flowScreen) Capturing() bool  { return false }
func (s *flowScreen) SetSize(w, h int) { s.table.SetSize(w, max(0, h-2)) }

func (s *flowScreen) Load() tea.Cmd {
	e, id := s.env, s.id
	return func() tea.Msg {
		var d api.FlowDetail
		err := e.call(func(ctx context.Context) (err error) {
			d, err = e.api.GetFlow(ctx, id)
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("flow %d: %w", id, err))
		}
		return flowMsg{to: s, flow: d}
	}
}

// act runs an action and reloads the flow.
func (s *flowScreen) act(done string, fn func(ctx context.Context) error) tea.Cmd {
	e := s.env
	return func() tea.Msg {
		if err := e.call(fn); err != nil {
			return fail(err)
		}
		return tea.BatchMsg{func() tea.Msg { return infoMsg(done) }, s.Load()}
	}
}

func (s *flowScreen) Update(msg tea.Msg) (Screen, tea.Cmd) {
	switch msg := msg.(type) {
	case flowMsg:
		if msg.to != s {
			return s, nil
		}
		s.ready = true
		s.setFlow(msg.flow)
	case tea.KeyMsg:
		if moveKey(&s.table, msg) || len(s.rows) == 0 {
			return s, nil
		}
		row := s.rows[s.table.Cursor]
		c := s.env.api
		switch {
		case key.Matches(msg, s.keys.Start):
			if row.run.State != ci.RunManual {
				return s, func() tea.Msg { return infoMsg("run " + row.run.Name + " is not a manual run waiting to start") }
			}
			return s, s.act("run "+row.run.Name+" started", func(ctx context.Context) error {
				_, err := c.StartRun(ctx, row.run.ID)
				return err
			})
		case key.Matches(msg, s.keys.CancelRun):
			return s, s.act("run "+row.run.Name+" cancelled", func(ctx context.Context) error {
				_, err := c.CancelRun(ctx, row.run.ID)
				return err
			})
		case key.Matches(msg, s.keys.RerunRun):
			return s, s.act("run "+row.run.Name+" rerun", func(ctx context.Context) error {
				_, err := c.RerunRun(ctx, row.run.ID)
				return err
			})
		case key.Matches(msg, s.keys.Results):
			return s, s.env.push(newResultsScreen(s.env, s.flow, row.run))
		}
		if row.job == nil {
			return s, nil
		}
		j := *row.job
		switch {
		case key.Matches(msg, s.keys.Open):
			return s, s.env.push(newLogScreen(s.env, j))
		case key.Matches(msg, s.keys.Cancel):
			return s, s.act("job "+j.Name+" cancelled", func(ctx context.Context) error {
				_, err := c.CancelJob(ctx, j.ID)
				return err
			})
		case key.Matches(msg, s.keys.Rerun):
			return s, s.act("job "+j.Name+" rerun", func(ctx context.Context) error {
				_, err := c.RerunJob(ctx, j.ID)
				return err
			})
		}
	}
	return s, nil
}

func jobState(j api.JobDetail) string {
	if j.State == ci.JobCompleted {
		return string(j.Result)
	}
	return string(j.State)
}

func jobStyle(st *Styles, j api.JobDetail) *lipgloss.Style {
	switch {
	case j.State == ci.JobCompleted && j.Result.Ok():
		return &st.Good
	case j.State == ci.JobCompleted:
		return &st.Bad
	case j.State == ci.JobQueued:
		return &st.Wait
	}
	return &st.Busy
}

func (s *flowScreen) setFlow(f api.FlowDetail) {
	s.flow = f
	st := &s.env.styles
	s.rows = s.rows[:0]
	var rows [][]Cell
	for _, r := range f.Runs {
		if len(r.Jobs) == 0 {
			s.rows = append(s.rows, flowRow{run: r})
			note := string(r.State)
			if r.State == ci.RunManual {
				note = "manual (s)"
			}
			rows = append(rows, []Cell{{Text: r.Name}, {Text: "-"}, {Text: note, Style: &st.Dim}})
			continue
		}
		for i := range r.Jobs {
			j := r.Jobs[i]
			if j.Covered {
				continue
			}
			s.rows = append(s.rows, flowRow{run: r, job: &j})
			stage := r.Name
			if len(s.rows) > 1 && s.rows[len(s.rows)-2].run.ID == r.ID {
				stage = ""
			}
			dur := ""
			if j.Duration > 0 {
				dur = (time.Duration(j.Duration) * time.Second).String()
			}
			rows = append(rows, []Cell{
				{Text: stage}, {Text: j.Name}, {Text: jobState(j), Style: jobStyle(st, j)},
				{Text: j.Agent}, {Text: j.System}, {Text: dur}, {Text: strconv.FormatInt(j.ID, 10)},
			})
		}
	}
	s.table.SetRows(rows)
}

func (s *flowScreen) View() string {
	st := s.env.styles
	if !s.ready {
		return st.Dim.Render("loading flow…")
	}
	f := s.flow
	head := fmt.Sprintf("%s/%s  %s %d  ", f.Project, f.Branch, strings.ToUpper(string(f.Kind)), f.KindSeq) +
		flowStyle(&st, f).Render(flowState(f))
	if len(s.rows) == 0 {
		return head + "\n\n" + st.Dim.Render("no runs yet")
	}
	return head + "\n\n" + s.table.View()
}
