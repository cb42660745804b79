package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tmuxSession is `kk tui` running in a detached tmux session on its own server.
type tmuxSession struct {
	t    *testing.T
	sock string
	w, h int
}

func (s *tmuxSession) tmux(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// screen returns the visible pane.
func (s *tmuxSession) screen() string {
	out, err := s.tmux("capture-pane", "-p", "-t", "tui")
	if err != nil {
		return ""
	}
	return out
}

func (s *tmuxSession) keys(keys ...string) {
	s.t.Helper()
	out, err := s.tmux(append([]string{"send-keys", "-t", "tui"}, keys...)...)
	require.NoError(s.t, err, "tmux send-keys: %s", out)
}

func (s *tmuxSession) waitScreen(what string, cond func(string) bool) {
	s.t.Helper()
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for {
		last = s.screen()
		s.checkLayout(last)
		if cond(last) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s; the screen is:\n%s", what, last)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// checkLayout fails the test when a frame is broken: a line that wrapped or
// overflowed pushes the header off the first row or the key line off the
// last one, and no line may be wider than the terminal.
func (s *tmuxSession) checkLayout(screen string) {
	s.t.Helper()
	lines := strings.Split(strings.TrimSuffix(screen, "\n"), "\n")
	if len(lines) != s.h || strings.TrimSpace(screen) == "" {
		return // the program has not drawn yet, or exited
	}
	if !strings.HasPrefix(lines[0], "kk ") || !strings.HasPrefix(lines[s.h-1], "? help") {
		s.t.Fatalf("broken layout at %dx%d: the header or the key line moved:\n%s", s.w, s.h, screen)
	}
	for i, l := range lines {
		if n := len([]rune(l)); n > s.w {
			s.t.Fatalf("line %d is %d cells wide at %dx%d: %q", i, n, s.w, s.h, l)
		}
	}
}

// startTUI runs `kk tui` at 80×24 in tmux, logged in as the cluster's admin.
func (c *cluster) startTUI(logFile string) *tmuxSession {
	c.t.Helper()
	return c.startTUISize(logFile, 80, 24)
}

// startTUISize runs `kk tui` in a w×h tmux window.
func (c *cluster) startTUISize(logFile string, w, h int) *tmuxSession {
	c.t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		c.t.Fatalf("tmux is required by the TUI end-to-end test: %v", err)
	}
	s := &tmuxSession{t: c.t, sock: filepath.Join(c.t.TempDir(), "tmux.sock"), w: w, h: h}
	cmdline := strings.Join([]string{
		"env", "KK_CONFIG=" + c.cfg, "KK_SERVER=", "KK_TOKEN=", "NO_COLOR=1", "TERM=xterm-256color",
		filepath.Join(binDir, "kk"), "tui", "--log-file", logFile,
	}, " ")
	out, err := s.tmux("new-session", "-d", "-s", "tui", "-x", strconv.Itoa(w), "-y", strconv.Itoa(h), cmdline)
	require.NoError(c.t, err, "tmux new-session: %s", out)
	c.t.Cleanup(func() { _, _ = s.tmux("kill-server") })
	return s
}

// TestTUIAuthorizesAgent drives the real `kk tui` against kkd and kkagent:
// it opens the agents screen, authorizes a discovered agent with `a` and
// checks the result through `kk agent list`, then quits with `q`.
func TestTUIAuthorizesAgent(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.startAgent("tui-agent")
	waitFor(t, 20*time.Second, "agent tui-agent to be discovered", func() bool {
		return findAgent(c.agents(true), "tui-agent") != nil
	})

	logFile := filepath.Join(t.TempDir(), "tui.log")
	s := c.startTUI(logFile)
	s.waitScreen("the projects screen", func(v string) bool { return strings.Contains(v, "no projects yet") })
	s.keys("A")
	s.waitScreen("the discovered agent", func(v string) bool {
		return strings.Contains(v, "tui-agent") && strings.Contains(v, "discovered")
	})
	s.keys("a")
	waitFor(t, 20*time.Second, "tui-agent to be authorized", func() bool {
		return findAgent(c.agents(false), "tui-agent") != nil
	})
	s.waitScreen("the status line", func(v string) bool { return strings.Contains(v, "agent tui-agent authorized") })
	s.waitScreen("the agent to turn idle on the screen", func(v string) bool {
		for _, l := range strings.Split(v, "\n") {
			if strings.Contains(l, "tui-agent") && strings.Contains(l, "idle") {
				return true
			}
		}
		return false
	})
	for _, l := range strings.Split(strings.TrimRight(s.screen(), "\n"), "\n") {
		require.LessOrEqual(t, len([]rune(l)), 80, "line wider than the terminal: %q", l)
	}

	s.keys("?")
	s.waitScreen("the help", func(v string) bool { return strings.Contains(v, "add to group") && strings.Contains(v, "Keys") })
	s.keys("q")
	s.waitScreen("kk tui to exit", func(string) bool {
		_, err := s.tmux("has-session", "-t", "tui")
		return err != nil
	})
	log, err := os.ReadFile(logFile)
	require.NoError(t, err)
	require.Contains(t, string(log), "tui started")
	require.Contains(t, string(log), "agent tui-agent authorized")
}

// TestTUIFollowsJobLog drills down from the project to a running job and
// follows its log live in the real `kk tui`.
func TestTUIFollowsJobLog(t *testing.T) {
	t.Parallel()
	for _, sz := range tuiSizes {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t)
			c.authorizedAgent("tui-runner")
			c.setupCounting(12, "0.5")
			c.ok("flow", "run", "chaos/main")

			s := c.startTUISize(filepath.Join(t.TempDir(), "tui.log"), sz[0], sz[1])
			s.waitScreen("the projects screen", func(v string) bool { return strings.Contains(v, "chaos") })
			s.keys("Enter")
			s.waitScreen("the branches screen", func(v string) bool { return strings.Contains(v, "BRANCH") })
			s.keys("Enter")
			s.waitScreen("the CI flow", func(v string) bool { return strings.Contains(v, "CI 1") })
			s.keys("Enter")
			s.waitScreen("the flow's job", func(v string) bool { return strings.Contains(v, "count") && strings.Contains(v, "tui-runner") })
			s.keys("Enter")
			s.waitScreen("the first log lines", func(v string) bool { return strings.Contains(v, "line 1") })
			s.waitScreen("the log to be followed to its end", func(v string) bool {
				return strings.Contains(v, "line 12") && strings.Contains(v, "end of log")
			})
			s.keys("g")
			s.waitScreen("the step header at the top", func(v string) bool { return strings.Contains(v, "==> step 0: shell") })
			s.keys("Escape")
			s.waitScreen("the flow screen again with the job done", func(v string) bool {
				return strings.Contains(v, "count") && strings.Contains(v, " ok ")
			})
			s.keys("q")
		})
	}
}

// tuiSizes are the terminal sizes the TUI's end-to-end tests run at.
var tuiSizes = [][2]int{{80, 24}, {160, 48}}

// lineWith reports whether a line of the screen contains every part.
func lineWith(screen string, parts ...string) bool {
	for _, l := range strings.Split(screen, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestTUIGroupsAgentThatGetsJob: in the real `kk tui`, a group is created,
// a discovered agent is authorized and put in the group, and then gets the
// job that waited for that group; the flow screen shows it done.
func TestTUIGroupsAgentThatGetsJob(t *testing.T) {
	t.Parallel()
	for _, sz := range tuiSizes {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t)
			c.startAgent("tui-agent")
			waitFor(t, 20*time.Second, "agent tui-agent to be discovered", func() bool {
				return findAgent(c.agents(true), "tui-agent") != nil
			})

			s := c.startTUISize(filepath.Join(t.TempDir(), "tui.log"), sz[0], sz[1])
			s.waitScreen("the projects screen", func(v string) bool { return strings.Contains(v, "no projects yet") })
			s.keys("A")
			s.waitScreen("the discovered agent", func(v string) bool { return lineWith(v, "tui-agent", "discovered") })
			s.keys("G")
			s.waitScreen("the groups screen", func(v string) bool { return strings.Contains(v, "GROUP") })
			// Keys go one by one: keys sent at once reach the TUI as one
			// string ("ntuigrp"), which no binding matches.
			s.keys("n")
			s.waitScreen("the new group prompt", func(v string) bool { return strings.Contains(v, "new group:") })
			s.keys("tuigrp", "Enter")
			s.waitScreen("the new group", func(v string) bool { return strings.Contains(v, "group tuigrp created") })
			// A stage for the new group; its job waits: the group has no agent yet.
			c.ok("project", "create", "chaos")
			c.ok("branch", "create", "chaos/main")
			stage := strings.Replace(countingStage(3, "0.1"), `"agents_group": "all"`, `"agents_group": "tuigrp"`, 1)
			c.ok("stage", "apply", "chaos/main", writeFile(t, "count.py", stage))
			c.ok("flow", "run", "chaos/main")
			s.keys("Escape")
			s.waitScreen("the agents screen again", func(v string) bool { return lineWith(v, "tui-agent", "discovered") })
			s.keys("a")
			s.waitScreen("the agent authorized", func(v string) bool {
				return strings.Contains(v, "agent tui-agent authorized") && lineWith(v, "tui-agent", "idle")
			})
			s.keys("g")
			s.waitScreen("the group prompt", func(v string) bool { return strings.Contains(v, "add tui-agent to group:") })
			s.keys("tuigrp", "Enter")
			s.waitScreen("the agent in the group", func(v string) bool {
				return strings.Contains(v, "added to group tuigrp") && lineWith(v, "tui-agent", "tuigrp")
			})
			waitFor(t, 30*time.Second, "tui-agent to run the job", func() bool {
				a := findAgent(c.agents(false), "tui-agent")
				return a != nil && slices.Contains(a.Groups, "tuigrp")
			})
			s.keys("P")
			s.waitScreen("the projects screen", func(v string) bool { return strings.Contains(v, "chaos") })
			s.keys("Enter")
			s.waitScreen("the branches screen", func(v string) bool { return strings.Contains(v, "BRANCH") })
			s.keys("Enter")
			s.waitScreen("the CI flow", func(v string) bool { return strings.Contains(v, "CI 1") })
			s.keys("Enter")
			s.waitScreen("the job done by tui-agent", func(v string) bool { return lineWith(v, "count", "ok", "tui-agent") })
			s.keys("q")
		})
	}
}

// TestTUICancelAndRerunJob cancels a running job and reruns it from the
// real `kk tui`; each new state shows within a second of the key.
func TestTUICancelAndRerunJob(t *testing.T) {
	t.Parallel()
	for _, sz := range tuiSizes {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t)
			c.authorizedAgent("tui-runner")
			c.setupCounting(600, "0.1")
			c.ok("flow", "run", "chaos/main")

			s := c.startTUISize(filepath.Join(t.TempDir(), "tui.log"), sz[0], sz[1])
			s.waitScreen("the projects screen", func(v string) bool { return strings.Contains(v, "chaos") })
			s.keys("Enter")
			s.waitScreen("the branches screen", func(v string) bool { return strings.Contains(v, "BRANCH") })
			s.keys("Enter")
			s.waitScreen("the CI flow", func(v string) bool { return strings.Contains(v, "CI 1") })
			s.keys("Enter")
			s.waitScreen("the running job", func(v string) bool { return lineWith(v, "count", "running") })

			within := func(what string, cond func(string) bool) {
				t.Helper()
				start := time.Now()
				s.waitScreen(what, cond)
				took := time.Since(start)
				t.Logf("%s after %v", what, took)
				require.Less(t, took, time.Second, "%s took %v", what, took)
			}
			s.keys("c")
			// The job's row (it names the agent; the status line does not)
			// shows cancelled once the agent has stopped the job.
			within("the job cancelled", func(v string) bool { return lineWith(v, "count", "cancelled", "tui-runner") })
			s.keys("r")
			within("the rerun job queued or running", func(v string) bool {
				return strings.Contains(v, "job count rerun") && (lineWith(v, "count", "queued") || lineWith(v, "count", "running") || lineWith(v, "count", "assigned"))
			})
			s.waitScreen("the rerun job running on the agent", func(v string) bool { return lineWith(v, "count", "running", "tui-runner") })
			s.keys("Enter")
			s.waitScreen("the rerun job's live log", func(v string) bool { return strings.Contains(v, "line 1") && strings.Contains(v, "following") })
			s.keys("Escape") // alone: Escape then c at once is alt+c
			s.waitScreen("the flow screen", func(v string) bool { return lineWith(v, "count", "running", "tui-runner") })
			s.keys("c")
			within("the rerun job cancelled", func(v string) bool { return lineWith(v, "count", "cancelled", "tui-runner") })
			s.keys("q")
		})
	}
}
