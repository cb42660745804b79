package tui

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/client"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// harness drives a Model synchronously: every command's message is fed back
// until none is left (polling is off, so no command waits).
type harness struct {
	t    *testing.T
	m    *Model
	quit bool
	log  *bytes.Buffer
}

// testServer is the URL the model tests show: every request goes to addr.
const testServer = "http://kkd.test:6363"

func newHarness(t *testing.T, addr string, w, h int, profile termenv.Profile) *harness {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	c, err := client.New(testServer, "tok", client.WithHTTPClient(hc))
	require.NoError(t, err)
	var logBuf bytes.Buffer
	r := NewRenderer(io.Discard, true)
	r.SetColorProfile(profile)
	m := New(t.Context(), Config{
		Client:   c,
		Logger:   slog.New(slog.NewTextHandler(&logBuf, nil)),
		Renderer: r,
		Now:      func() time.Time { return testNow },
	})
	hs := &harness{t: t, m: m, log: &logBuf}
	hs.run(m.Init())
	hs.send(tea.WindowSizeMsg{Width: w, Height: h})
	return hs
}

// newAgentsHarness opens the agents screen (A) over the projects screen.
func newAgentsHarness(t *testing.T, addr string, w, h int, profile termenv.Profile) *harness {
	t.Helper()
	hs := newHarness(t, addr, w, h, profile)
	hs.keys("A")
	return hs
}

func (h *harness) run(cmd tea.Cmd) {
	if cmd != nil {
		h.send(cmd())
	}
}

func (h *harness) send(msg tea.Msg) {
	queue := []tea.Msg{msg}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		switch m := m.(type) {
		case nil:
			continue
		case tea.BatchMsg:
			for _, c := range m {
				if c != nil {
					queue = append(queue, c())
				}
			}
			continue
		case tea.QuitMsg:
			h.quit = true
			continue
		}
		_, cmd := h.m.Update(m)
		if cmd != nil {
			queue = append(queue, cmd())
		}
	}
}

// keys sends each key: names like "enter", "esc", "down", or runes.
func (h *harness) keys(keys ...string) {
	for _, k := range keys {
		switch k {
		case "enter":
			h.send(tea.KeyMsg{Type: tea.KeyEnter})
		case "esc":
			h.send(tea.KeyMsg{Type: tea.KeyEsc})
		case "backspace":
			h.send(tea.KeyMsg{Type: tea.KeyBackspace})
		case "down":
			h.send(tea.KeyMsg{Type: tea.KeyDown})
		case "tab":
			h.send(tea.KeyMsg{Type: tea.KeyTab})
		case "up":
			h.send(tea.KeyMsg{Type: tea.KeyUp})
		case "ctrl+c":
			h.send(tea.KeyMsg{Type: tea.KeyCtrlC})
		default:
			for _, r := range k {
				h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
			}
		}
	}
}

func (h *harness) view() string { return h.m.View() }

// checkFits asserts that a view is exactly w×h cells at most.
func checkFits(t *testing.T, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	assert.Len(t, lines, h, "view height")
	for i, l := range lines {
		assert.LessOrEqual(t, ansi.StringWidth(l), w, "line %d is wider than %d: %q", i, w, ansi.Strip(l))
	}
}

// golden compares the view (without escape sequences) with testdata/name.golden.
func golden(t *testing.T, name, view string, w, h int) {
	t.Helper()
	checkFits(t, view, w, h)
	got := ansi.Strip(view) + "\n"
	p := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(p, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(p)
	require.NoError(t, err, "missing golden file: run go test ./pkg/tui/ -update")
	assert.Equal(t, string(want), got, "view differs from %s: rerun with -update if intended", p)
}

func TestGoldenViews(t *testing.T) {
	t.Parallel()
	sizes := [][2]int{{80, 24}, {160, 48}}
	cases := []struct {
		name string
		keys []string
	}{
		{"agents", []string{"A"}},
		{"agents_cursor_down", []string{"A", "down", "down"}},
		{"agents_help", []string{"A", "?"}},
		{"agents_group_prompt", []string{"A", "down", "g", "linux"}},
		{"agents_delete_confirm", []string{"A", "x"}},
		{"agents_authorized", []string{"A", "a"}},
		{"agents_group_error", []string{"A", "g", "missing", "enter"}},
		{"groups", []string{"A", "G"}},
		{"groups_new_prompt", []string{"A", "G", "n", "arm64"}},
		{"groups_created", []string{"A", "G", "n", "arm64", "enter"}},
		{"projects", nil},
		{"branches", []string{"enter"}},
		{"flows_ci", []string{"enter", "enter"}},
		{"flows_dev", []string{"enter", "enter", "tab"}},
		{"flows_empty", []string{"down", "enter", "enter"}},
		{"flow", []string{"enter", "enter", "enter"}},
		{"flow_help", []string{"enter", "enter", "enter", "?"}},
		{"logs_follow", []string{"enter", "enter", "enter", "down", "down", "enter"}},
		{"logs_top", []string{"enter", "enter", "enter", "down", "down", "enter", "g"}},
		{"logs_first_error", []string{"enter", "enter", "enter", "down", "down", "enter", "E"}},
		{"agents_ungroup_prompt", []string{"A", "down", "u"}},
		{"flow_results", []string{"enter", "enter", "enter", "down", "down", "t"}},
		{"flow_results_failed_by_name", []string{"enter", "enter", "enter", "down", "down", "t", "f", "o"}},
		{"flow_results_name_prompt", []string{"enter", "enter", "enter", "down", "down", "t", "/", "api"}},
		{"test_history", []string{"enter", "enter", "enter", "down", "down", "t", "enter"}},
		{"picker", []string{"enter", "enter", "b"}},
		{"picker_filtered", []string{"enter", "enter", "b", "quiet"}},
		{"picked", []string{"enter", "enter", "b", "feat", "enter"}},
		{"new_flow_form", []string{"enter", "enter", "n", "tab"}},
		{"new_flow_started", []string{"enter", "enter", "tab", "n", "enter"}},
		{"logs_search", []string{"enter", "enter", "enter", "down", "down", "enter", "/", "step 1"}},
	}
	for _, tc := range cases {
		for _, sz := range sizes {
			name := tc.name + "_" + strconv.Itoa(sz[0]) + "x" + strconv.Itoa(sz[1])
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f := newFakeAPI()
				h := newHarness(t, f.serve(t).Listener.Addr().String(), sz[0], sz[1], termenv.Ascii)
				h.keys(tc.keys...)
				require.Empty(t, f.Errors(), "unexpected requests")
				golden(t, name, h.view(), sz[0], sz[1])
			})
		}
	}
}

func teaSize(w, h int) tea.WindowSizeMsg { return tea.WindowSizeMsg{Width: w, Height: h} }
