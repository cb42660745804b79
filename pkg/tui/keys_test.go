package tui

import (
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAgentKeys(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		keys      []string
		wantCalls []string
		status    string // expected in the view's status line ("" = none)
	}{
		{"authorize discovered", []string{"a"}, []string{"authorize 4"}, "agent new-host authorized"},
		{"authorize authorized is a no-op", []string{"down", "a"}, nil, "agent builder-1 is already authorized"},
		{"disable", []string{"down", "d"}, []string{"disable 1"}, "agent builder-1 disabled"},
		{"enable", []string{"down", "down", "down", "e"}, []string{"enable 3"}, "agent mac-mini enabled"},
		{"add to group", []string{"down", "g", "linux", "enter"}, []string{"group linux 1"}, "agent builder-1 added to group linux"},
		{"group input esc cancels, does not go back", []string{"g", "lin", "esc", "a"}, []string{"authorize 4"}, "agent new-host authorized"},
		{"group input keeps q and ?", []string{"g", "q?", "enter"}, []string{"group q? 4"}, "added to group q?"},
		{"group error in status line", []string{"g", "missing", "enter"}, []string{"group missing 4"}, `group "missing" does not exist`},
		{"delete cancelled", []string{"x", "n"}, nil, "delete cancelled"},
		{"delete confirmed", []string{"down", "down", "x", "y"}, []string{"delete 2"}, "agent builder-2 deleted"},
		{"cursor stays in range", []string{"up", "up", "down", "down", "down", "down", "down", "down", "d"}, []string{"disable 3"}, "agent mac-mini disabled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI()
			h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
			h.keys(tc.keys...)
			assert.Equal(t, tc.wantCalls, f.Calls())
			assert.False(t, h.quit)
			lines := strings.Split(ansi.Strip(h.view()), "\n")
			require.Len(t, lines, 24)
			assert.Contains(t, lines[22], tc.status, "status line")
		})
	}
}

func TestGlobalKeys(t *testing.T) {
	t.Parallel()
	f := newFakeAPI()
	addr := f.serve(t).Listener.Addr().String()

	t.Run("help toggles and esc closes it", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, addr, 80, 24, termenv.Ascii)
		h.keys("?")
		assert.Contains(t, ansi.Strip(h.view()), "add to group")
		assert.Contains(t, ansi.Strip(h.view()), "Keys")
		h.keys("esc")
		assert.NotContains(t, ansi.Strip(h.view()), "Keys")
		h.keys("?", "?")
		assert.NotContains(t, ansi.Strip(h.view()), "Keys")
	})
	t.Run("back on the first screen stays", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, addr, 80, 24, termenv.Ascii)
		h.keys("esc", "backspace")
		assert.Len(t, h.m.stack, 1)
		assert.False(t, h.quit)
	})
	t.Run("q quits", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, addr, 80, 24, termenv.Ascii)
		h.keys("q")
		assert.True(t, h.quit)
	})
	t.Run("ctrl+c quits", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, addr, 80, 24, termenv.Ascii)
		h.keys("ctrl+c")
		assert.True(t, h.quit)
	})
}

func TestResizeAlwaysFits(t *testing.T) {
	t.Parallel()
	f := newFakeAPI()
	h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
	for _, sz := range [][2]int{{20, 5}, {40, 10}, {79, 23}, {200, 60}, {1, 1}, {80, 24}} {
		h.send(teaSize(sz[0], sz[1]))
		checkFits(t, h.view(), sz[0], sz[1])
		h.keys("?")
		checkFits(t, h.view(), sz[0], sz[1])
		h.keys("?")
	}
}

func TestUnreachableServerShowsStatus(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there any more
	h := newHarness(t, addr, 80, 24, termenv.Ascii)
	h.keys("a", "down")
	lines := strings.Split(ansi.Strip(h.view()), "\n")
	assert.Contains(t, lines[22], "cannot reach http://kkd.test:6363")
	assert.Contains(t, h.log.String(), "tui error")
}

// colourSGR matches an escape sequence that sets a foreground or background colour.
var colourSGR = regexp.MustCompile(`\x1b\[(?:[0-9]+;)*(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])(?:;[0-9]+)*m`)

func TestNoColor(t *testing.T) {
	t.Parallel()
	f := newFakeAPI()
	addr := f.serve(t).Listener.Addr().String()
	colour := newHarness(t, addr, 80, 24, termenv.ANSI256).view()
	assert.Regexp(t, colourSGR, colour, "colours are on with a colour profile")
	plain := newHarness(t, addr, 80, 24, termenv.Ascii).view()
	assert.NotRegexp(t, colourSGR, plain, "no colour without colours")
	assert.Contains(t, ansi.Strip(plain), "› new-host", "the selection shows without colour")

	r := NewRenderer(&strings.Builder{}, true)
	assert.Equal(t, termenv.Ascii, r.ColorProfile())
}

func TestTickRefreshes(t *testing.T) {
	t.Parallel()
	f := newFakeAPI()
	h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
	assert.Contains(t, ansi.Strip(h.view()), "building")
	f.mu.Lock()
	f.agents[1].State = "idle"
	f.agents[1].JobID = 0
	f.mu.Unlock()
	h.send(tickMsg{})
	assert.NotContains(t, ansi.Strip(h.view()), "building")
}
