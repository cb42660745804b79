package tui

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/kraken-go/kk/pkg/api"
)

type groupKeys struct {
	Create, Delete key.Binding
}

// groupsMsg carries the groups.
type groupsMsg struct {
	to     *groupsScreen
	groups []api.Group
}

// groupDoneMsg reports a finished group action; the list is reloaded.
type groupDoneMsg struct {
	to   *groupsScreen
	info string
}

// groupsScreen lists the agent groups with their members; it creates and
// deletes groups (agents join a group from the agents screen, g).
type groupsScreen struct {
	env    *env
	keys   groupKeys
	table  Table
	groups []api.Group
	ready  bool
	mode   agentsMode
	input  textinput.Model
}

func newGroupsScreen(e *env) *groupsScreen {
	in := textinput.New()
	in.Placeholder = "group name"
	in.CharLimit = 64
	in.Cursor.SetMode(cursor.CursorStatic)
	s := &groupsScreen{env: e, input: in, keys: groupKeys{
		Create: key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "new group")),
		Delete: key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "delete group")),
	}}
	s.table = Table{styles: &e.styles, Columns: []Column{{Title: "GROUP", Width: 20}, {Title: "AGENTS", Width: 200}}}
	return s
}

func (s *groupsScreen) Title() string       { return "groups" }
func (s *groupsScreen) Keys() []key.Binding { return []key.Binding{s.keys.Create, s.keys.Delete} }
func (s *groupsScreen) Capturing() bool     { return s.mode != modeBrowse }

func (s *groupsScreen) SetSize(w, h int) {
	s.input.Width = max(10, w-30)
	// The members column takes what the name leaves.
	s.table.Columns[1].Width = max(1, w-2-s.table.Columns[0].Width-2)
	s.table.SetSize(w, max(0, h-2))
}

func (s *groupsScreen) Load() tea.Cmd {
	e := s.env
	return func() tea.Msg {
		var gs []api.Group
		err := e.call(func(ctx context.Context) (err error) {
			gs, err = e.api.ListGroups(ctx)
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("list groups: %w", err))
		}
		sort.Slice(gs, func(i, j int) bool { return gs[i].Name < gs[j].Name })
		return groupsMsg{to: s, groups: gs}
	}
}

func (s *groupsScreen) act(done string, fn func(ctx context.Context) error) tea.Cmd {
	e := s.env
	return func() tea.Msg {
		if err := e.call(fn); err != nil {
			return fail(err)
		}
		return groupDoneMsg{to: s, info: done}
	}
}

func (s *groupsScreen) Update(msg tea.Msg) (Screen, tea.Cmd) {
	switch msg := msg.(type) {
	case groupsMsg:
		if msg.to != s {
			return s, nil
		}
		s.ready = true
		s.groups = msg.groups
		rows := make([][]Cell, 0, len(msg.groups))
		for _, g := range msg.groups {
			rows = append(rows, []Cell{{Text: g.Name}, {Text: strings.Join(g.Agents, ", ")}})
		}
		s.table.SetRows(rows)
	case groupDoneMsg:
		if msg.to != s {
			return s, nil
		}
		return s, tea.Batch(func() tea.Msg { return infoMsg(msg.info) }, s.Load())
	case tea.KeyMsg:
		c := s.env.api
		switch s.mode {
		case modeGroup:
			switch msg.Type {
			case tea.KeyEsc:
				s.mode = modeBrowse
				s.input.Blur()
				return s, nil
			case tea.KeyEnter:
				s.mode = modeBrowse
				s.input.Blur()
				name := strings.TrimSpace(s.input.Value())
				if name == "" {
					return s, nil
				}
				return s, s.act("group "+name+" created", func(ctx context.Context) error {
					_, err := c.CreateGroup(ctx, api.CreateGroup{Name: name})
					return err
				})
			}
			var cmd tea.Cmd
			s.input, cmd = s.input.Update(msg)
			return s, cmd
		case modeConfirmDelete:
			s.mode = modeBrowse
			if msg.String() != "y" || len(s.groups) == 0 {
				return s, func() tea.Msg { return infoMsg("delete cancelled") }
			}
			name := s.groups[s.table.Cursor].Name
			return s, s.act("group "+name+" deleted", func(ctx context.Context) error {
				return c.DeleteGroup(ctx, name)
			})
		}
		if moveKey(&s.table, msg) {
			return s, nil
		}
		switch {
		case key.Matches(msg, s.keys.Create):
			s.mode = modeGroup
			s.input.SetValue("")
			return s, s.input.Focus()
		case key.Matches(msg, s.keys.Delete) && len(s.groups) > 0:
			s.mode = modeConfirmDelete
		}
	}
	return s, nil
}

func (s *groupsScreen) View() string {
	st := s.env.styles
	if !s.ready {
		return st.Dim.Render("loading groups…")
	}
	var prompt string
	switch s.mode {
	case modeGroup:
		prompt = st.Prompt.Render("new group: ") + s.input.View()
	case modeConfirmDelete:
		prompt = st.Prompt.Render("delete group " + s.groups[s.table.Cursor].Name + "? (y/n)")
	}
	return fmt.Sprintf("%d groups", len(s.groups)) + "\n" + prompt + "\n" + s.table.View()
}
