package tui

import (
	"context"
	"fmt"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/kraken-go/kk/pkg/ci"
)

var openKey = key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open"))

// listRowsMsg carries the rows of one list screen.
type listRowsMsg struct {
	to    *listScreen
	rows  [][]Cell
	open  []func() Screen
	empty string
}

// listScreen is a table of things to pick (projects, branches): Enter opens
// the screen of the selected row.
type listScreen struct {
	env   *env
	title string
	table Table
	open  []func() Screen
	empty string
	load  func(ctx context.Context) (listRowsMsg, error)
	ready bool
}

func (s *listScreen) Title() string       { return s.title }
func (s *listScreen) Keys() []key.Binding { return []key.Binding{openKey} }
func (s *listScreen) Capturing() bool     { return false }
func (s *listScreen) SetSize(w, h int)    { s.table.SetSize(w, h) }

func (s *listScreen) Load() tea.Cmd {
	return func() tea.Msg {
		var msg listRowsMsg
		err := s.env.call(func(ctx context.Context) (err error) {
			msg, err = s.load(ctx)
			return err
		})
		if err != nil {
			return fail(err)
		}
		msg.to = s
		return msg
	}
}

func (s *listScreen) Update(msg tea.Msg) (Screen, tea.Cmd) {
	switch msg := msg.(type) {
	case listRowsMsg:
		if msg.to != s {
			return s, nil
		}
		s.ready = true
		s.open, s.empty = msg.open, msg.empty
		s.table.SetRows(msg.rows)
	case tea.KeyMsg:
		if moveKey(&s.table, msg) {
			return s, nil
		}
		if key.Matches(msg, openKey) && s.table.Cursor < len(s.open) {
			return s, s.env.push(s.open[s.table.Cursor]())
		}
	}
	return s, nil
}

func (s *listScreen) View() string {
	if !s.ready {
		return s.env.styles.Dim.Render("loading…")
	}
	if len(s.open) == 0 {
		return s.env.styles.Dim.Render(s.empty)
	}
	return s.table.View()
}

// moveKey moves the table's cursor for the global movement keys.
func moveKey(t *Table, msg tea.KeyMsg) bool {
	g := DefaultGlobalKeys()
	switch {
	case key.Matches(msg, g.Up):
		t.Move(-1)
	case key.Matches(msg, g.Down):
		t.Move(1)
	case key.Matches(msg, g.Top):
		t.GoTo(0)
	case key.Matches(msg, g.Bottom):
		t.GoTo(-1)
	default:
		return false
	}
	return true
}

func newProjectsScreen(e *env) *listScreen {
	s := &listScreen{env: e, title: "projects"}
	s.table = Table{styles: &e.styles, Columns: []Column{{Title: "PROJECT", Width: 24}, {Title: "DESCRIPTION", Width: 50, Drop: 1}}}
	s.load = func(ctx context.Context) (listRowsMsg, error) {
		ps, err := e.api.ListProjects(ctx)
		if err != nil {
			return listRowsMsg{}, fmt.Errorf("list projects: %w", err)
		}
		msg := listRowsMsg{empty: "no projects yet: create one with `kk project create NAME`"}
		for _, p := range ps {
			msg.rows = append(msg.rows, []Cell{{Text: p.Name}, {Text: p.Description}})
			msg.open = append(msg.open, func() Screen { return newBranchesScreen(e, p) })
		}
		return msg, nil
	}
	return s
}

func newBranchesScreen(e *env, p ci.Project) *listScreen {
	s := &listScreen{env: e, title: p.Name}
	s.table = Table{styles: &e.styles, Columns: []Column{{Title: "BRANCH", Width: 24}, {Title: "REPO BRANCH", Width: 24, Drop: 1}}}
	s.load = func(ctx context.Context) (listRowsMsg, error) {
		bs, err := e.api.ListBranches(ctx, p.Name)
		if err != nil {
			return listRowsMsg{}, fmt.Errorf("list branches of %s: %w", p.Name, err)
		}
		msg := listRowsMsg{empty: "no branches: create one with `kk branch create " + p.Name + "/BRANCH`"}
		for _, b := range bs {
			msg.rows = append(msg.rows, []Cell{{Text: b.Name}, {Text: b.RepoBranch}})
			msg.open = append(msg.open, func() Screen { return newFlowsScreen(e, p.Name, b) })
		}
		return msg, nil
	}
	return s
}
