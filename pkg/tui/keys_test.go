package tui

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
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
		{"remove from group", []string{"down", "u", "enter"}, []string{"ungroup linux 1"}, "agent builder-1 removed from group linux"},
		{"remove from another group", []string{"down", "u", "backspace", "backspace", "backspace", "backspace", "backspace", "all", "enter"}, []string{"ungroup all 1"}, "removed from group all"},
		{"remove from group esc", []string{"down", "u", "esc", "d"}, []string{"disable 1"}, "agent builder-1 disabled"},
		{"remove when only in all", []string{"down", "down", "u"}, nil, "only in group all"},
		{"delete cancelled", []string{"x", "n"}, nil, "delete cancelled"},
		{"delete confirmed", []string{"down", "down", "x", "y"}, []string{"delete 2"}, "agent builder-2 deleted"},
		{"cursor stays in range", []string{"up", "up", "down", "down", "down", "down", "down", "down", "d"}, []string{"disable 3"}, "agent mac-mini disabled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI()
			h := newAgentsHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
			h.keys(tc.keys...)
			assert.Equal(t, tc.wantCalls, f.Calls())
			assert.False(t, h.quit)
			lines := strings.Split(ansi.Strip(h.view()), "\n")
			require.Len(t, lines, 24)
			assert.Contains(t, lines[22], tc.status, "status line")
		})
	}
}

func TestGroupKeys(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		keys      []string
		wantCalls []string
		status    string
	}{
		{"create", []string{"n", "arm64", "enter"}, []string{"create group arm64"}, "group arm64 created"},
		{"create existing shows the error", []string{"n", "linux", "enter"}, []string{"create group linux"}, "group linux exists"},
		{"create cancelled", []string{"n", "arm", "esc", "x", "n"}, nil, "delete cancelled"},
		{"delete confirmed", []string{"down", "x", "y"}, []string{"delete group linux"}, "group linux deleted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI()
			h := newAgentsHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
			h.keys("G")
			h.keys(tc.keys...)
			assert.Equal(t, tc.wantCalls, f.Calls())
			assert.Empty(t, f.Errors())
			lines := strings.Split(ansi.Strip(h.view()), "\n")
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
		h.keys("A", "?")
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
		h.keys("A")
		require.Len(t, h.m.stack, 2)
		h.keys("esc", "backspace")
		assert.Len(t, h.m.stack, 1)
		assert.False(t, h.quit)
	})
	t.Run("screen keys do nothing under the help", func(t *testing.T) {
		t.Parallel()
		f := newFakeAPI()
		h := newAgentsHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
		h.keys("?", "a", "x", "y")
		assert.Empty(t, f.Calls())
	})
	t.Run("ctrl+c quits while typing", func(t *testing.T) {
		t.Parallel()
		h := newAgentsHarness(t, addr, 80, 24, termenv.Ascii)
		h.keys("g", "ab", "ctrl+c")
		assert.True(t, h.quit)
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
	h := newAgentsHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
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
	colour := newAgentsHarness(t, addr, 80, 24, termenv.ANSI256).view()
	assert.Regexp(t, colourSGR, colour, "colours are on with a colour profile")
	plain := newAgentsHarness(t, addr, 80, 24, termenv.Ascii).view()
	assert.NotRegexp(t, colourSGR, plain, "no colour without colours")
	assert.Contains(t, ansi.Strip(plain), "› new-host", "the selection shows without colour")

	r := NewRenderer(&strings.Builder{}, true)
	assert.Equal(t, termenv.Ascii, r.ColorProfile())
}

func TestTickRefreshes(t *testing.T) {
	t.Parallel()
	f := newFakeAPI()
	h := newAgentsHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
	assert.Contains(t, ansi.Strip(h.view()), "building")
	f.mu.Lock()
	f.agents[1].State = "idle"
	f.agents[1].JobID = 0
	f.mu.Unlock()
	h.send(tickMsg{})
	assert.NotContains(t, ansi.Strip(h.view()), "building")
}

func TestFlowKeys(t *testing.T) {
	t.Parallel()
	open := []string{"enter", "enter", "enter"} // demo → main → CI 12
	cases := []struct {
		name      string
		keys      []string
		wantCalls []string
		status    string
	}{
		{"cancel job", []string{"c"}, []string{"jobs/301/cancel"}, "job compile cancelled"},
		{"rerun job", []string{"down", "down", "r"}, []string{"jobs/303/rerun"}, "job integration rerun"},
		{"start manual run", []string{"down", "down", "down", "s"}, []string{"runs/203/start"}, "run deploy started"},
		{"start a run that is not manual", []string{"s"}, nil, "not a manual run"},
		{"cancel on a run row does nothing", []string{"down", "down", "down", "c"}, nil, ""},
		{"cancel run", []string{"C"}, []string{"runs/201/cancel"}, "run build cancelled"},
		{"rerun run", []string{"down", "down", "R"}, []string{"runs/202/rerun"}, "run tests rerun"},
		{"rerun a manual run row", []string{"down", "down", "down", "R"}, []string{"runs/203/rerun"}, "run deploy rerun"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI()
			h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
			h.keys(open...)
			h.keys(tc.keys...)
			assert.Equal(t, tc.wantCalls, f.Calls())
			assert.Empty(t, f.Errors())
			lines := strings.Split(ansi.Strip(h.view()), "\n")
			assert.Contains(t, lines[22], tc.status, "status line")
		})
	}
}

func TestNavigation(t *testing.T) {
	t.Parallel()
	f := newFakeAPI()
	h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
	h.keys("enter", "enter", "enter", "down", "down", "enter")
	require.Len(t, h.m.stack, 5)
	assert.Contains(t, ansi.Strip(h.view()), "projects › demo › demo/main › CI 12 › job 303 integration")
	logs := h.m.top().(*logScreen)
	h.keys("esc")
	require.Len(t, h.m.stack, 4)
	assert.Error(t, logs.ctx.Err(), "leaving the log viewer stops its stream")
	h.keys("backspace", "esc", "esc", "esc")
	assert.Len(t, h.m.stack, 1)
	h.keys("enter", "enter", "P")
	assert.Len(t, h.m.stack, 1)
	assert.Empty(t, f.Errors())
}

func TestLogRangesAndSearch(t *testing.T) {
	t.Parallel()
	f := newFakeAPI()
	const n = 120000 // about 3.5 MB: more than one window, more than the ring
	f.logs[303] = testLog(n) + strings.Repeat("a very long line ", 40) + "\n"
	size := len(f.logs[303])
	h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
	h.keys("enter", "enter", "enter", "down", "down", "enter")
	s := h.m.top().(*logScreen)
	assert.True(t, s.done)
	assert.Len(t, s.lines, maxLogLines, "the viewer keeps a bounded window of lines")
	assert.Equal(t, fmt.Sprintf("line %d of the job output", n), s.lines[len(s.lines)-2])
	assert.Equal(t, []logRead{{offset: size - logWindow, n: logWindow}, {offset: size}}, f.logReads,
		"the viewer reads the tail, then follows from its end")
	view := ansi.Strip(h.view())
	checkFits(t, h.view(), 80, 24)
	assert.Contains(t, view, "end of log · 20000 lines · from byte", "a long line does not push the footer out")
	assert.Contains(t, view, fmt.Sprintf("line %d of the job output", n), "follows the end")
	h.keys("E")
	assert.Contains(t, ansi.Strip(h.view()), "no error line in the loaded log")

	// Scrolling back reads earlier ranges, one window at a time.
	for range 10 {
		if strings.Contains(strings.Join(s.lines, "\n"), "ERROR: test_login") {
			break
		}
		h.keys("g")
	}
	assert.True(t, s.cut, "the last lines went to keep the window")
	assert.LessOrEqual(t, len(s.lines), maxLogLines)
	h.keys("E")
	assert.Contains(t, strings.Split(ansi.Strip(h.view()), "\n")[1], "ERROR: test_login failed")
	assert.Contains(t, ansi.Strip(h.view()), "paused (G: back to the end)")
	h.keys("[")
	assert.Contains(t, strings.Split(ansi.Strip(h.view()), "\n")[1], "==> step 1: shell (pytest)")
	assert.Contains(t, ansi.Strip(h.view()), "step 1: shell (pytest)", "the footer names the step in view")
	h.keys("/", "line 119000 ", "enter")
	assert.Contains(t, ansi.Strip(h.view()), `"line 119000 " not found in the loaded log`)
	for _, r := range f.logReads {
		assert.LessOrEqual(t, r.n, logWindow, "no read is larger than a window")
	}
	h.keys("G")
	assert.False(t, s.cut)
	assert.Contains(t, ansi.Strip(h.view()), fmt.Sprintf("line %d of the job output", n))
	checkFits(t, h.view(), 80, 24)
}

func TestLogSteps(t *testing.T) {
	t.Parallel()
	f := newFakeAPI()
	f.logs[303] = testLog(200)
	h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 30, termenv.Ascii)
	h.keys("enter", "enter", "enter", "down", "down", "enter", "g")
	first := func() string { return strings.TrimRight(strings.Split(ansi.Strip(h.view()), "\n")[1], " ") }
	assert.Equal(t, "==> step 0: git (clone)", first())
	h.keys("]")
	assert.Equal(t, "==> step 1: shell (pytest)", first())
	assert.Contains(t, ansi.Strip(h.view()), "· step 1: shell (pytest)")
	h.keys("]")
	assert.Contains(t, ansi.Strip(h.view()), "no later step")
	h.keys("[")
	assert.Equal(t, "==> step 0: git (clone)", first())
	assert.Equal(t, []logRead{{offset: 0, n: len(f.logs[303])}, {offset: len(f.logs[303])}}, f.logReads, "a short log is read once")
}

func TestResultsKeys(t *testing.T) {
	t.Parallel()
	open := []string{"enter", "enter", "enter", "down", "down", "t"} // the tests run of CI 12
	cases := []struct {
		name      string
		keys      []string
		wantCalls []string
		first     string // the first test shown
		rows      int
	}{
		{"relevancy first", nil, []string{"results 202 sort=relevancy"}, "test_login", 5},
		{"failed only", []string{"f"}, []string{"results 202 sort=relevancy", "results 202 sort=relevancy&status=failed"}, "test_login", 1},
		{"status cycles back to all", []string{"f", "f", "f", "f", "f", "f", "f"}, nil, "test_login", 5},
		{"fixes", []string{"c", "c"}, []string{"results 202 sort=relevancy", "results 202 change=regr&sort=relevancy", "results 202 change=fix&sort=relevancy"}, "test_paging", 2},
		{"by name", []string{"o"}, []string{"results 202 sort=relevancy", "results 202 sort=name"}, "test_api.py::test_paging", 5},
		{"name filter", []string{"/", "models", "enter"}, []string{"results 202 sort=relevancy", "results 202 name=%2Amodels%2A&sort=relevancy"}, "test_user_roundtrip", 2},
		{"name filter esc keeps it", []string{"/", "models", "esc"}, []string{"results 202 sort=relevancy"}, "test_login", 5},
		{"history", []string{"down", "enter"}, []string{"results 202 sort=relevancy", "history 7 limit=60&name=tests%2Ftest_api.py%3A%3Atest_rate_limit"}, "", 12},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI()
			h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
			h.keys(open...)
			h.keys(tc.keys...)
			if tc.wantCalls != nil {
				assert.Equal(t, tc.wantCalls, f.Calls())
			}
			assert.Empty(t, f.Errors())
			switch s := h.m.top().(type) {
			case *resultsScreen:
				require.Len(t, s.results, tc.rows)
				assert.Contains(t, s.results[0].Name, tc.first)
			case *historyScreen:
				assert.Len(t, s.results, tc.rows)
				assert.Contains(t, ansi.Strip(h.view()), "12 results, 8 passed, max 5.0s")
			default:
				t.Fatalf("unexpected screen %T", s)
			}
			checkFits(t, h.view(), 80, 24)
		})
	}
}

func TestSparklines(t *testing.T) {
	t.Parallel()
	st := NewStyles(NewRenderer(&strings.Builder{}, true))
	rs := testHistory("x")[:4] // newest first: failed 1s, passed 2s, passed 3s, failed 4s (bars scaled to the longest)
	status, dur := sparklines(&st, rs, 80)
	assert.Equal(t, "✗▪▪✗", status, "oldest to newest")
	assert.Equal(t, "█▆▅▃", dur)
	status, dur = sparklines(&st, rs, 2)
	assert.Equal(t, "▪✗", status, "a narrow line keeps the newest")
	assert.Equal(t, "█▅", dur)
}

func TestPickerAndNewFlow(t *testing.T) {
	t.Parallel()
	t.Run("picker replaces the dashboard", func(t *testing.T) {
		t.Parallel()
		f := newFakeAPI()
		h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
		h.keys("enter", "enter", "b", "qui", "enter")
		require.Len(t, h.m.stack, 3)
		fs := h.m.top().(*flowsScreen)
		assert.Equal(t, "quiet", fs.project)
		assert.Contains(t, ansi.Strip(h.view()), "projects › quiet › quiet/main")
		h.keys("esc")
		assert.Contains(t, ansi.Strip(h.view()), "projects › quiet", "back goes to the picked project's branches")
		assert.Contains(t, ansi.Strip(h.view()), "main")
		h.keys("enter")
		h.keys("b", "esc")
		assert.Len(t, h.m.stack, 3, "esc leaves the picker only")
		assert.Empty(t, f.Errors())
	})
	t.Run("new flow with changed arguments", func(t *testing.T) {
		t.Parallel()
		f := newFakeAPI()
		h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
		h.keys("enter", "enter", "tab", "n")
		form := h.m.top().(*flowFormScreen)
		require.Len(t, form.params, 3, "the enabled stages' parameters, each name once")
		assert.Equal(t, []string{"TARGET", "JOBS", "SUITE"}, []string{form.params[0].Name, form.params[1].Name, form.params[2].Name})
		h.keys("down", "backspace", "8", "down", " -k login", "enter")
		assert.Equal(t, []string{"create dev flow on 7 JOBS=8 SUITE=all -k login"}, f.Calls())
		require.Len(t, h.m.stack, 4, "the form gave way to the new flow")
		assert.Contains(t, ansi.Strip(h.view()), "DEV 13")
		assert.Contains(t, ansi.Strip(h.view()), "DEV 13 started")
		assert.Empty(t, f.Errors())
	})
	t.Run("esc cancels the form", func(t *testing.T) {
		t.Parallel()
		f := newFakeAPI()
		h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
		h.keys("enter", "enter", "n", "q", "esc")
		assert.Len(t, h.m.stack, 3)
		assert.False(t, h.quit, "q types into the form")
		assert.Empty(t, f.Calls())
	})
}

// TestOpenIsImmediate: a screen opened by a key is on the stack before the
// next key arrives, so keys typed quickly reach the screen they were meant for.
func TestOpenIsImmediate(t *testing.T) {
	t.Parallel()
	f := newFakeAPI()
	h := newHarness(t, f.serve(t).Listener.Addr().String(), 80, 24, termenv.Ascii)
	_, cmd := h.m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'A'}})
	require.Len(t, h.m.stack, 2, "A opened the agents screen without waiting for a command")
	_, _ = h.m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'G'}})
	require.Len(t, h.m.stack, 3)
	_, _ = h.m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'n'}})
	assert.True(t, h.m.top().Capturing(), "n reached the groups screen before any data arrived")
	h.run(cmd)
}
