package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tmuxSession is `kk tui` running in a detached tmux session on its own server.
type tmuxSession struct {
	t    *testing.T
	sock string
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
		if cond(last) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s; the screen is:\n%s", what, last)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// startTUI runs `kk tui` at 80×24 in tmux, logged in as the cluster's admin.
func (c *cluster) startTUI(logFile string) *tmuxSession {
	c.t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		c.t.Fatalf("tmux is required by the TUI end-to-end test: %v", err)
	}
	s := &tmuxSession{t: c.t, sock: filepath.Join(c.t.TempDir(), "tmux.sock")}
	cmdline := strings.Join([]string{
		"env", "KK_CONFIG=" + c.cfg, "KK_SERVER=", "KK_TOKEN=", "NO_COLOR=1", "TERM=xterm-256color",
		filepath.Join(binDir, "kk"), "tui", "--log-file", logFile,
	}, " ")
	out, err := s.tmux("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", cmdline)
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
	c := newCluster(t)
	c.authorizedAgent("tui-runner")
	c.setupCounting(12, "0.5")
	c.ok("flow", "run", "chaos/main")

	s := c.startTUI(filepath.Join(t.TempDir(), "tui.log"))
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
	s.keys("Escape")
	s.waitScreen("the flow screen again with the job done", func(v string) bool {
		return strings.Contains(v, "count") && strings.Contains(v, " ok ")
	})
	s.keys("q")
}
