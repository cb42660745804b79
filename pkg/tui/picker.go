package tui

import (
	"context"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/kraken-go/kk/pkg/ci"
)

// popMsg takes the top screen off the stack. With replace, the screen below
// it is replaced too (a picker choosing another branch); then is pushed
// after (a form opening what it created).
type popMsg struct {
	replace Screen
	then    Screen
	// reset, when set, replaces every screen above the first one.
	reset []Screen
}

// pop asks the root model to take the top screen off the stack, at once.
func (e *env) pop(replace, then Screen) tea.Cmd {
	e.nav = append(e.nav, popMsg{replace: replace, then: then})
	return nil
}

// pickItem is one project/branch pair of the picker.
type pickItem struct {
	project string
	branch  ci.Branch
}

func (p pickItem) String() string { return p.project + "/" + p.branch.Name }

// pickerMsg carries every project/branch pair.
type pickerMsg struct {
	to    *pickerScreen
	items []pickItem
}

// pickerScreen picks a project/branch for the dashboard: typing filters the
// list, Enter replaces the dashboard with the chosen branch's.
type pickerScreen struct {
	env     *env
	current string
	input   textinput.Model
	items   []pickItem
	shown   []pickItem
	table   Table
	ready   bool
}

func newPickerScreen(e *env, current string) *pickerScreen {
	in := textinput.New()
	in.Prompt = "branch: "
	in.Placeholder = "type to filter"
	in.Cursor.SetMode(cursor.CursorStatic)
	in.Focus()
	s := &pickerScreen{env: e, current: current, input: in}
	s.table = Table{styles: &e.styles, Columns: []Column{{Title: "PROJECT/BRANCH", Width: 40}, {Title: "REPO BRANCH", Width: 24, Drop: 1}}}
	return s
}

func (s *pickerScreen) Title() string { return "pick a branch" }
func (s *pickerScreen) Keys() []key.Binding {
	return []key.Binding{
		key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open")),
		key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "move")),
	}
}

// Capturing: every key types into the filter; Esc goes back.
func (s *pickerScreen) Capturing() bool { return true }

func (s *pickerScreen) SetSize(w, h int) {
	s.input.Width = max(10, w-12)
	s.table.SetSize(w, max(0, h-2))
}

func (s *pickerScreen) Load() tea.Cmd {
	if s.ready {
		return nil
	}
	e := s.env
	return func() tea.Msg {
		var items []pickItem
		err := e.call(func(ctx context.Context) error {
			ps, err := e.api.ListProjects(ctx)
			if err != nil {
				return fmt.Errorf("list projects: %w", err)
			}
			for _, p := range ps {
				bs, err := e.api.ListBranches(ctx, p.Name)
				if err != nil {
					return fmt.Errorf("list branches of %s: %w", p.Name, err)
				}
				for _, b := range bs {
					items = append(items, pickItem{project: p.Name, branch: b})
				}
			}
			return nil
		})
		if err != nil {
			return fail(err)
		}
		return pickerMsg{to: s, items: items}
	}
}

func (s *pickerScreen) filter() {
	q := strings.ToLower(strings.TrimSpace(s.input.Value()))
	s.shown = s.shown[:0]
	rows := [][]Cell{}
	for _, it := range s.items {
		if q != "" && !strings.Contains(strings.ToLower(it.String()), q) {
			continue
		}
		s.shown = append(s.shown, it)
		rows = append(rows, []Cell{{Text: it.String()}, {Text: it.branch.RepoBranch}})
	}
	s.table.SetRows(rows)
}

func (s *pickerScreen) Update(msg tea.Msg) (Screen, tea.Cmd) {
	switch msg := msg.(type) {
	case pickerMsg:
		if msg.to != s {
			return s, nil
		}
		s.ready = true
		s.items = msg.items
		s.filter()
		for i, it := range s.shown {
			if it.String() == s.current {
				s.table.GoTo(i)
			}
		}
	case tea.KeyMsg:
		switch msg.Type {
		case tea.KeyEsc:
			return s, s.env.pop(nil, nil)
		case tea.KeyUp:
			s.table.Move(-1)
			return s, nil
		case tea.KeyDown:
			s.table.Move(1)
			return s, nil
		case tea.KeyEnter:
			if len(s.shown) == 0 {
				return s, nil
			}
			it := s.shown[s.table.Cursor]
			// The stack reads projects › PROJECT › PROJECT/BRANCH again.
			s.env.nav = append(s.env.nav, popMsg{reset: []Screen{
				newBranchesScreen(s.env, ci.Project{Name: it.project}),
				newFlowsScreen(s.env, it.project, it.branch),
			}})
			return s, nil
		}
		var cmd tea.Cmd
		s.input, cmd = s.input.Update(msg)
		s.filter()
		s.table.GoTo(0)
		return s, cmd
	}
	return s, nil
}

func (s *pickerScreen) View() string {
	st := s.env.styles
	if !s.ready {
		return s.input.View() + "\n\n" + st.Dim.Render("loading branches…")
	}
	if len(s.shown) == 0 {
		return s.input.View() + "\n\n" + st.Dim.Render("no branch matches")
	}
	return s.input.View() + "\n\n" + s.table.View()
}
