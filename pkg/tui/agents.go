package tui

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// agentKeys are the agents screen's bindings.
type agentKeys struct {
	Authorize key.Binding
	Enable    key.Binding
	Disable   key.Binding
	Group     key.Binding
	Ungroup   key.Binding
	Delete    key.Binding
	Groups    key.Binding
}

func defaultAgentKeys() agentKeys {
	return agentKeys{
		Authorize: key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "authorize")),
		Enable:    key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "enable")),
		Disable:   key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "disable")),
		Group:     key.NewBinding(key.WithKeys("g"), key.WithHelp("g", "add to group")),
		Ungroup:   key.NewBinding(key.WithKeys("u"), key.WithHelp("u", "remove from group")),
		Delete:    key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "delete")),
		Groups:    key.NewBinding(key.WithKeys("G"), key.WithHelp("G", "groups")),
	}
}

// agentsMsg carries a fresh list: discovered agents first, then authorized ones.
type agentsMsg struct{ agents []api.Agent }

// agentDoneMsg reports a finished agent action; the list is reloaded.
type agentDoneMsg struct{ info string }

// agentsMode is what the agents screen is reading from the keyboard.
type agentsMode int

const (
	modeBrowse        agentsMode = iota
	modeGroup                    // typing a group name
	modeUngroup                  // typing the group to leave
	modeConfirmDelete            // y/n
)

// agentsScreen lists authorized and discovered agents and acts on them.
type agentsScreen struct {
	env    *env
	keys   agentKeys
	table  Table
	agents []api.Agent
	loaded bool
	mode   agentsMode
	input  textinput.Model
	width  int
	height int
}

func newAgentsScreen(e *env) *agentsScreen {
	in := textinput.New()
	in.Placeholder = "group name"
	in.CharLimit = 64
	in.Cursor.SetMode(cursor.CursorStatic)
	s := &agentsScreen{env: e, keys: defaultAgentKeys(), input: in}
	s.table = Table{styles: &e.styles, Columns: []Column{
		{Title: "NAME", Width: 16},
		{Title: "STATE", Width: 12},
		{Title: "GROUPS", Width: 14, Drop: 2},
		{Title: "SYSTEM", Width: 12, Drop: 3},
		{Title: "JOB", Width: 6, Drop: 4},
		{Title: "LAST SEEN", Width: 9, Drop: 1},
		{Title: "ADDRESS", Width: 15, Drop: 8},
		{Title: "DOCKER", Width: 9, Drop: 7},
		{Title: "LXD", Width: 7, Drop: 6},
		{Title: "EXECUTORS", Width: 18, Drop: 5},
	}}
	return s
}

func (s *agentsScreen) Title() string { return "agents" }

func (s *agentsScreen) Keys() []key.Binding {
	return []key.Binding{s.keys.Authorize, s.keys.Enable, s.keys.Disable, s.keys.Group, s.keys.Ungroup, s.keys.Delete, s.keys.Groups}
}

func (s *agentsScreen) Capturing() bool { return s.mode != modeBrowse }

func (s *agentsScreen) SetSize(w, h int) {
	s.width, s.height = w, h
	s.input.Width = max(10, w-30)
	s.table.SetSize(w, max(0, h-2))
}

// Load lists the discovered and the authorized agents.
func (s *agentsScreen) Load() tea.Cmd {
	e := s.env
	return func() tea.Msg {
		var all []api.Agent
		err := e.call(func(ctx context.Context) error {
			disc, err := e.api.ListAgents(ctx, true)
			if err != nil {
				return fmt.Errorf("list discovered agents: %w", err)
			}
			auth, err := e.api.ListAgents(ctx, false)
			if err != nil {
				return fmt.Errorf("list agents: %w", err)
			}
			sort.SliceStable(disc, func(i, j int) bool { return disc[i].Name < disc[j].Name })
			sort.SliceStable(auth, func(i, j int) bool { return auth[i].Name < auth[j].Name })
			all = append(disc, auth...)
			return nil
		})
		if err != nil {
			return fail(err)
		}
		return agentsMsg{all}
	}
}

func (s *agentsScreen) selected() (api.Agent, bool) {
	if len(s.agents) == 0 {
		return api.Agent{}, false
	}
	return s.agents[s.table.Cursor], true
}

// act runs an agent action and reports it; the list is reloaded after it.
func (s *agentsScreen) act(what string, fn func(ctx context.Context) error) tea.Cmd {
	e := s.env
	return func() tea.Msg {
		if err := e.call(fn); err != nil {
			return fail(err)
		}
		return agentDoneMsg{what}
	}
}

func (s *agentsScreen) Update(msg tea.Msg) (Screen, tea.Cmd) {
	switch msg := msg.(type) {
	case agentsMsg:
		s.loaded = true
		s.setAgents(msg.agents)
		return s, nil
	case agentDoneMsg:
		return s, tea.Batch(func() tea.Msg { return infoMsg(msg.info) }, s.Load())
	case tea.KeyMsg:
		switch s.mode {
		case modeGroup, modeUngroup:
			return s.updateGroupInput(msg)
		case modeConfirmDelete:
			return s.updateConfirm(msg)
		}
		return s.updateBrowse(msg)
	}
	return s, nil
}

func (s *agentsScreen) updateBrowse(msg tea.KeyMsg) (Screen, tea.Cmd) {
	g := DefaultGlobalKeys()
	switch {
	case key.Matches(msg, g.Up):
		s.table.Move(-1)
	case key.Matches(msg, g.Down):
		s.table.Move(1)
	case key.Matches(msg, g.Top):
		s.table.GoTo(0)
	case key.Matches(msg, g.Bottom):
		s.table.GoTo(-1)
	case key.Matches(msg, s.keys.Groups):
		return s, s.env.push(newGroupsScreen(s.env))
	}
	a, ok := s.selected()
	if !ok {
		return s, nil
	}
	c := s.env.api
	switch {
	case key.Matches(msg, s.keys.Authorize):
		if a.Authorized {
			return s, func() tea.Msg { return infoMsg("agent " + a.Name + " is already authorized") }
		}
		return s, s.act("agent "+a.Name+" authorized", func(ctx context.Context) error {
			_, err := c.AuthorizeAgent(ctx, agentRef(a), api.AuthorizeAgent{})
			return err
		})
	case key.Matches(msg, s.keys.Enable):
		return s, s.act("agent "+a.Name+" enabled", func(ctx context.Context) error {
			_, err := c.EnableAgent(ctx, agentRef(a))
			return err
		})
	case key.Matches(msg, s.keys.Disable):
		return s, s.act("agent "+a.Name+" disabled", func(ctx context.Context) error {
			_, err := c.DisableAgent(ctx, agentRef(a))
			return err
		})
	case key.Matches(msg, s.keys.Group):
		s.mode = modeGroup
		s.input.SetValue("")
		return s, s.input.Focus()
	case key.Matches(msg, s.keys.Ungroup):
		// Offer the last group the agent joined ("all" cannot be left).
		guess := ""
		for _, g := range a.Groups {
			if g != "all" {
				guess = g
			}
		}
		if guess == "" {
			return s, func() tea.Msg { return infoMsg("agent " + a.Name + " is only in group all, which every agent is in") }
		}
		s.mode = modeUngroup
		s.input.SetValue(guess)
		s.input.CursorEnd()
		return s, s.input.Focus()
	case key.Matches(msg, s.keys.Delete):
		s.mode = modeConfirmDelete
	}
	return s, nil
}

// agentRef names an agent by id: names may be reused by a new discovery.
func agentRef(a api.Agent) string { return strconv.FormatInt(a.ID, 10) }

func (s *agentsScreen) updateGroupInput(msg tea.KeyMsg) (Screen, tea.Cmd) {
	switch msg.Type {
	case tea.KeyEsc:
		s.mode = modeBrowse
		s.input.Blur()
		return s, nil
	case tea.KeyEnter:
		mode := s.mode
		s.mode = modeBrowse
		s.input.Blur()
		group := strings.TrimSpace(s.input.Value())
		a, ok := s.selected()
		if group == "" || !ok {
			return s, nil
		}
		c := s.env.api
		if mode == modeUngroup {
			return s, s.act("agent "+a.Name+" removed from group "+group, func(ctx context.Context) error {
				_, err := c.RemoveAgentFromGroup(ctx, group, agentRef(a))
				return err
			})
		}
		return s, s.act("agent "+a.Name+" added to group "+group, func(ctx context.Context) error {
			_, err := c.AddAgentToGroup(ctx, group, agentRef(a))
			return err
		})
	}
	var cmd tea.Cmd
	s.input, cmd = s.input.Update(msg)
	return s, cmd
}

func (s *agentsScreen) updateConfirm(msg tea.KeyMsg) (Screen, tea.Cmd) {
	s.mode = modeBrowse
	a, ok := s.selected()
	if msg.String() != "y" || !ok {
		return s, func() tea.Msg { return infoMsg("delete cancelled") }
	}
	c := s.env.api
	return s, s.act("agent "+a.Name+" deleted", func(ctx context.Context) error {
		return c.DeleteAgent(ctx, agentRef(a), false)
	})
}

func (s *agentsScreen) setAgents(agents []api.Agent) {
	// Keep the cursor on the same agent across refreshes.
	var keep int64
	if a, ok := s.selected(); ok {
		keep = a.ID
	}
	s.agents = agents
	st := &s.env.styles
	rows := make([][]Cell, 0, len(agents))
	cursor := s.table.Cursor
	for i, a := range agents {
		if a.ID == keep {
			cursor = i
		}
		job := ""
		if a.JobID != 0 {
			job = strconv.FormatInt(a.JobID, 10)
		}
		addr := a.Address
		if addr == "" {
			addr = a.HostInfo.Hostname
		}
		state := string(a.State)
		if a.Disabled && a.State != ci.AgentDisabled {
			state += " (off)"
		}
		rows = append(rows, []Cell{
			{Text: a.Name},
			{Text: state, Style: agentStateStyle(st, a)},
			{Text: strings.Join(a.Groups, ",")},
			{Text: a.HostInfo.System},
			{Text: job},
			{Text: ago(s.env.now(), a.LastSeen)},
			{Text: addr},
			{Text: orDash(a.HostInfo.Docker)},
			{Text: orDash(a.HostInfo.LXD)},
			{Text: strings.Join(a.Executors, ",")},
		})
	}
	s.table.SetRows(rows)
	s.table.GoTo(cursor)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func agentStateStyle(st *Styles, a api.Agent) *lipgloss.Style {
	switch {
	case a.State == ci.AgentDiscovered:
		return &st.Wait
	case a.Disabled || a.State == ci.AgentDisabled, a.State == ci.AgentLostContact, a.State == ci.AgentMissing:
		return &st.Bad
	case a.State == ci.AgentBuilding || a.State == ci.AgentPreparing:
		return &st.Busy
	}
	return &st.Good
}

// ago renders how long ago t was, coarsely ("12s", "5m", "3h", "2d").
func ago(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	d := now.Sub(*t)
	switch {
	case d < 0:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func (s *agentsScreen) View() string {
	st := s.env.styles
	if !s.loaded {
		return st.Dim.Render("loading agents…")
	}
	disc := 0
	for _, a := range s.agents {
		if !a.Authorized {
			disc++
		}
	}
	summary := fmt.Sprintf("%d agents", len(s.agents)-disc)
	if disc > 0 {
		summary += ", " + st.Wait.Render(fmt.Sprintf("%d discovered (a to authorize)", disc))
	}
	var prompt string
	switch s.mode {
	case modeGroup:
		a, _ := s.selected()
		prompt = st.Prompt.Render("add "+a.Name+" to group: ") + s.input.View()
	case modeUngroup:
		a, _ := s.selected()
		prompt = st.Prompt.Render("remove "+a.Name+" from group: ") + s.input.View()
	case modeConfirmDelete:
		a, _ := s.selected()
		prompt = st.Prompt.Render("delete agent " + a.Name + "? (y/n)")
	}
	return summary + "\n" + prompt + "\n" + s.table.View()
}
