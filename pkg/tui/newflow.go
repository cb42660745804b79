package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// flowParam is a stage parameter of the new-flow form.
type flowParam struct {
	Stage       string
	Name        string `json:"name"`
	Type        string `json:"type"`
	Default     string `json:"default"`
	Description string `json:"description"`
}

// stageParameters returns the parameters declared by the enabled stages, in
// stage order; a name declared twice is asked once (flow arguments are one
// map for every stage).
func stageParameters(stages []ci.Stage) ([]flowParam, error) {
	var out []flowParam
	seen := map[string]bool{}
	for _, st := range stages {
		if !st.Enabled || len(st.Schema) == 0 {
			continue
		}
		var sch struct {
			Parameters []flowParam `json:"parameters"`
		}
		if err := json.Unmarshal(st.Schema, &sch); err != nil {
			return nil, fmt.Errorf("stage %s: read its parameters: %w", st.Name, err)
		}
		for _, p := range sch.Parameters {
			if seen[p.Name] {
				continue
			}
			seen[p.Name] = true
			p.Stage = st.Name
			out = append(out, p)
		}
	}
	return out, nil
}

// paramsMsg carries the stages' parameters.
type paramsMsg struct {
	to     *flowFormScreen
	params []flowParam
}

// flowCreatedMsg reports the new flow.
type flowCreatedMsg struct {
	to   *flowFormScreen
	flow api.FlowDetail
}

// flowFormScreen is the form that starts a flow: one field per stage
// parameter, filled with its default. Enter starts the flow with the values
// that differ from the defaults (as `kk flow run --arg NAME=VALUE` does) and
// opens it.
type flowFormScreen struct {
	env     *env
	project string
	branch  ci.Branch
	kind    ci.FlowKind
	params  []flowParam
	inputs  []textinput.Model
	focus   int
	ready   bool
	sending bool
	width   int
	height  int
}

func newFlowFormScreen(e *env, project string, b ci.Branch, kind ci.FlowKind) *flowFormScreen {
	return &flowFormScreen{env: e, project: project, branch: b, kind: kind}
}

func (s *flowFormScreen) Title() string { return "new " + strings.ToUpper(string(s.kind)) + " flow" }
func (s *flowFormScreen) Keys() []key.Binding {
	return []key.Binding{
		key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "start flow")),
		key.NewBinding(key.WithKeys("tab", "down"), key.WithHelp("tab/↓", "next field")),
		key.NewBinding(key.WithKeys("shift+tab", "up"), key.WithHelp("⇧tab/↑", "previous field")),
	}
}

// Capturing: the fields read every key; Esc goes back.
func (s *flowFormScreen) Capturing() bool { return true }

func (s *flowFormScreen) SetSize(w, h int) {
	s.width, s.height = w, h
	for i := range s.inputs {
		s.inputs[i].Width = max(10, w-s.labelWidth()-4)
	}
}

func (s *flowFormScreen) labelWidth() int {
	n := 10
	for _, p := range s.params {
		n = max(n, len(p.Name)+2)
	}
	return min(n, 30)
}

func (s *flowFormScreen) Load() tea.Cmd {
	if s.ready {
		return nil
	}
	e, b := s.env, s.branch.ID
	return func() tea.Msg {
		var params []flowParam
		err := e.call(func(ctx context.Context) error {
			stages, err := e.api.ListStages(ctx, b)
			if err != nil {
				return fmt.Errorf("list stages: %w", err)
			}
			params, err = stageParameters(stages)
			return err
		})
		if err != nil {
			return fail(err)
		}
		return paramsMsg{to: s, params: params}
	}
}

func (s *flowFormScreen) args() map[string]string {
	args := map[string]string{}
	for i, p := range s.params {
		if v := s.inputs[i].Value(); v != p.Default {
			args[p.Name] = v
		}
	}
	return args
}

func (s *flowFormScreen) submit() tea.Cmd {
	if s.sending {
		return nil
	}
	s.sending = true
	e, b, in := s.env, s.branch.ID, api.CreateFlow{Kind: s.kind, Args: s.args()}
	return func() tea.Msg {
		var f api.FlowDetail
		err := e.call(func(ctx context.Context) (err error) {
			f, err = e.api.CreateFlow(ctx, b, in)
			return err
		})
		if err != nil {
			return tea.BatchMsg{func() tea.Msg { return flowCreatedMsg{to: s} }, func() tea.Msg { return fail(err) }}
		}
		return flowCreatedMsg{to: s, flow: f}
	}
}

func (s *flowFormScreen) setFocus(i int) tea.Cmd {
	if len(s.inputs) == 0 {
		return nil
	}
	s.inputs[s.focus].Blur()
	s.focus = (i + len(s.inputs)) % len(s.inputs)
	return s.inputs[s.focus].Focus()
}

func (s *flowFormScreen) Update(msg tea.Msg) (Screen, tea.Cmd) {
	switch msg := msg.(type) {
	case paramsMsg:
		if msg.to != s {
			return s, nil
		}
		s.ready = true
		s.params = msg.params
		s.inputs = make([]textinput.Model, len(msg.params))
		for i, p := range msg.params {
			in := textinput.New()
			in.Prompt = ""
			in.Cursor.SetMode(cursor.CursorStatic)
			in.SetValue(p.Default)
			s.inputs[i] = in
		}
		s.SetSize(s.width, s.height)
		return s, s.setFocus(0)
	case flowCreatedMsg:
		if msg.to != s {
			return s, nil
		}
		s.sending = false
		if msg.flow.ID == 0 {
			return s, nil // the error is in the status line
		}
		info := fmt.Sprintf("%s %d started", strings.ToUpper(string(msg.flow.Kind)), msg.flow.KindSeq)
		return s, tea.Batch(s.env.pop(nil, newFlowScreen(s.env, msg.flow.ID)), func() tea.Msg { return infoMsg(info) })
	case tea.KeyMsg:
		switch msg.String() {
		case "esc":
			return s, s.env.pop(nil, nil)
		case "enter":
			if !s.ready {
				return s, nil
			}
			return s, s.submit()
		case "tab", "down":
			return s, s.setFocus(s.focus + 1)
		case "shift+tab", "up":
			return s, s.setFocus(s.focus - 1)
		}
		if len(s.inputs) == 0 {
			return s, nil
		}
		var cmd tea.Cmd
		s.inputs[s.focus], cmd = s.inputs[s.focus].Update(msg)
		return s, cmd
	}
	return s, nil
}

func (s *flowFormScreen) View() string {
	st := s.env.styles
	head := fmt.Sprintf("start a %s flow on %s/%s", strings.ToUpper(string(s.kind)), s.project, s.branch.Name)
	if !s.ready {
		return head + "\n\n" + st.Dim.Render("loading the stages' parameters…")
	}
	if s.sending {
		head += st.Dim.Render("  starting…")
	}
	if len(s.params) == 0 {
		return head + "\n\n" + st.Dim.Render("the stages declare no parameters: enter starts the flow")
	}
	lw := s.labelWidth()
	lines := []string{head, st.Dim.Render("enter starts the flow with these arguments; esc cancels"), ""}
	// Each field takes two lines: name and value, then its description.
	first := 0
	if per := max(1, (s.height-3)/2); s.focus >= per {
		first = s.focus - per + 1
	}
	for i := first; i < len(s.params); i++ {
		p := s.params[i]
		label := pad(p.Name, lw)
		if i == s.focus {
			label = st.Prompt.Render(label)
		}
		lines = append(lines, marker(i == s.focus)+label+s.inputs[i].View())
		desc := p.Stage
		if p.Description != "" {
			desc += ": " + p.Description
		}
		if p.Type != "" && p.Type != "string" {
			desc += " (" + p.Type + ")"
		}
		lines = append(lines, "  "+strings.Repeat(" ", lw)+st.Dim.Render(desc))
	}
	return strings.Join(lines, "\n")
}

func marker(on bool) string {
	if on {
		return "› "
	}
	return "  "
}
