package tui

import "github.com/charmbracelet/bubbles/key"

// GlobalKeys are the keys every screen understands. The help view (`?`) is
// generated from these bindings and from the current screen's own bindings.
type GlobalKeys struct {
	Help     key.Binding
	Back     key.Binding
	Quit     key.Binding
	Agents   key.Binding
	Projects key.Binding
	Up       key.Binding
	Down     key.Binding
	Top      key.Binding
	Bottom   key.Binding
}

// DefaultGlobalKeys returns the global keymap.
func DefaultGlobalKeys() GlobalKeys {
	return GlobalKeys{
		Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Back:     key.NewBinding(key.WithKeys("esc", "backspace"), key.WithHelp("esc", "back")),
		Quit:     key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		Agents:   key.NewBinding(key.WithKeys("A"), key.WithHelp("A", "agents")),
		Projects: key.NewBinding(key.WithKeys("P"), key.WithHelp("P", "projects")),
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Top:      key.NewBinding(key.WithKeys("home"), key.WithHelp("home", "first")),
		Bottom:   key.NewBinding(key.WithKeys("end"), key.WithHelp("end", "last")),
	}
}

// Bindings lists the global bindings in help order.
func (k GlobalKeys) Bindings() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.Top, k.Bottom, k.Back, k.Projects, k.Agents, k.Help, k.Quit}
}
