package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/store/pgtest"
)

// plannedFlow is what these tests read of `kk flow list -o json`.
type plannedFlow struct {
	ID          int64     `json:"id"`
	Created     time.Time `json:"created"`
	TriggerData *struct {
		Forge   string `json:"forge"`
		Repo    string `json:"repo"`
		Branch  string `json:"branch"`
		Before  string `json:"before"`
		After   string `json:"after"`
		Commits []struct {
			ID      string `json:"id"`
			Message string `json:"message"`
			Author  struct {
				Name string `json:"name"`
			} `json:"author"`
		} `json:"commits"`
	} `json:"trigger_data"`
}

const cronStage = `def stage(ctx):
    return {
        "parent": "root",
        "triggers": {"cron": "* * * * *"},
        "jobs": [{"name": "tick", "steps": [{"tool": "shell", "cmd": "true"}],
                  "environments": [{"agents_group": "all", "system": "any", "config": "default"}]}],
    }
`

// TestPlannerCronReplicas: a cron "* * * * *" stage on two kkd replicas
// sharing one PostgreSQL fires within 2 s after each minute boundary, exactly
// once, also across a leader change between two boundaries.
func TestPlannerCronReplicas(t *testing.T) {
	t.Parallel()
	db := pgtest.URL(t)
	storage := "file://" + t.TempDir()
	a := newCluster(t, "--db", db, "--storage", storage)
	b := newCluster(t, "--db", db, "--storage", storage)
	waitFor(t, 20*time.Second, "one replica to lead", func() bool {
		return strings.Contains(a.kkd.Output(), leaderLog) || strings.Contains(b.kkd.Output(), leaderLog)
	})
	a.ok("project", "create", "timed")
	a.ok("branch", "create", "timed/main")
	a.ok("stage", "apply", "timed/main", writeFile(t, "tick.py", cronStage))
	applied := time.Now()

	// The first boundary at least 3 s away (the planner sees a stage within 1 s).
	first := applied.Add(3 * time.Second).Truncate(time.Minute).Add(time.Minute)
	flowsAfter := func(boundary time.Time, want int) []plannedFlow {
		t.Helper()
		var flows []plannedFlow
		waitFor(t, time.Until(boundary)+10*time.Second, fmt.Sprintf("%d flow(s) after %s", want, boundary.Format(time.TimeOnly)), func() bool {
			b.okJSON(&flows, "flow", "list", "timed/main")
			return len(flows) >= want
		})
		// Nothing more comes for this boundary.
		waitFor(t, time.Until(boundary.Add(5*time.Second))+time.Second, "5 s past the boundary", func() bool {
			return time.Now().After(boundary.Add(5 * time.Second))
		})
		b.okJSON(&flows, "flow", "list", "timed/main")
		require.Len(t, flows, want, "exactly one flow per boundary")
		return flows // newest first
	}

	flows := flowsAfter(first, 1)
	late := flows[0].Created.Sub(first)
	t.Logf("boundary 1: flow created %v after the minute", late)
	require.GreaterOrEqual(t, late, time.Duration(0))
	require.Less(t, late, 2*time.Second)
	var sched []struct {
		Stage     string     `json:"stage"`
		Trigger   string     `json:"trigger"`
		LastFired *time.Time `json:"last_fired"`
		Next      *time.Time `json:"next"`
	}
	a.okJSON(&sched, "stage", "schedule", "timed/main")
	require.Len(t, sched, 1)
	require.Equal(t, "cron", sched[0].Trigger)
	require.True(t, sched[0].LastFired.Equal(first), "last fired %v", sched[0].LastFired)
	require.True(t, sched[0].Next.Equal(first.Add(time.Minute)), "next %v", sched[0].Next)
	text := a.ok("stage", "schedule", "timed/main")
	require.Contains(t, text, "tick")
	require.Contains(t, text, first.Add(time.Minute).UTC().Format(time.RFC3339))

	// Kill the leader: the other replica takes over and fires the next minute.
	leader, other := a, b
	if !strings.Contains(a.kkd.Output(), leaderLog) {
		leader, other = b, a
	}
	leader.kkd.kill(syscall.SIGKILL)
	second := first.Add(time.Minute)
	b = other
	flows = flowsAfter(second, 2)
	late = flows[0].Created.Sub(second)
	t.Logf("boundary 2 (after a leader change): flow created %v after the minute", late)
	require.GreaterOrEqual(t, late, time.Duration(0))
	require.Less(t, late, 2*time.Second)
	require.Contains(t, other.kkd.Output(), leaderLog)
}

// TestPlannerRepoTrigger: a repo trigger polling a file:// repository every
// 2 s records the head first, starts nothing while the branch does not move,
// and starts one run with the new commits once one is pushed.
func TestPlannerRepoTrigger(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed for this test: %v", err)
	}
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		cmd.Env = append(cmd.Environ(), "GIT_AUTHOR_NAME=Ann", "GIT_AUTHOR_EMAIL=ann@example.com",
			"GIT_COMMITTER_NAME=Ann", "GIT_COMMITTER_EMAIL=ann@example.com")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	git("commit", "-q", "--allow-empty", "-m", "first")
	url := "file://" + filepath.ToSlash(repo)

	c := newCluster(t)
	c.ok("project", "create", "polled")
	c.ok("branch", "create", "polled/main", "--repo-branch", "main")
	c.ok("stage", "apply", "polled/main", writeFile(t, "poll.py", fmt.Sprintf(`def stage(ctx):
    return {
        "parent": "root",
        "triggers": {"repo": {"url": %q, "interval": "2s"}},
        "jobs": [{"name": "build", "timeout": 120,
                  "steps": [{"tool": "git", "checkout": %q, "branch": "main", "destination": "src"}],
                  "environments": [{"agents_group": "all", "system": "any", "config": "default"}]}],
    }
`, url, url)))

	type entry struct {
		Trigger  string     `json:"trigger"`
		LastPoll *time.Time `json:"last_poll"`
	}
	lastPoll := func() time.Time {
		var sched []entry
		c.okJSON(&sched, "stage", "schedule", "polled/main")
		require.Len(t, sched, 1)
		require.Equal(t, "repo", sched[0].Trigger)
		if sched[0].LastPoll == nil {
			return time.Time{}
		}
		return *sched[0].LastPoll
	}
	var p1 time.Time
	waitFor(t, 15*time.Second, "the first poll", func() bool { p1 = lastPoll(); return !p1.IsZero() })
	waitFor(t, 15*time.Second, "a second poll", func() bool { return lastPoll().After(p1) })
	var flows []plannedFlow
	c.okJSON(&flows, "flow", "list", "polled/main")
	require.Empty(t, flows, "no new commit: no run")

	git("commit", "-q", "--allow-empty", "-m", "second")
	git("commit", "-q", "--allow-empty", "-m", "third: the newest")
	newest := git("rev-parse", "HEAD")
	firstSHA := git("rev-parse", "HEAD~2")
	waitFor(t, 15*time.Second, "a flow for the new commits", func() bool {
		c.okJSON(&flows, "flow", "list", "polled/main")
		return len(flows) > 0
	})
	require.Len(t, flows, 1)
	td := flows[0].TriggerData
	require.NotNil(t, td)
	require.Equal(t, url, td.Repo)
	require.Equal(t, "main", td.Branch)
	require.Equal(t, firstSHA, td.Before)
	require.Equal(t, newest, td.After)
	require.Len(t, td.Commits, 2)
	require.Equal(t, newest, td.Commits[1].ID)
	require.Equal(t, "third: the newest", td.Commits[1].Message)
	require.Equal(t, "Ann", td.Commits[1].Author.Name)

	var detail struct {
		Runs []struct {
			Name   string `json:"name"`
			Reason string `json:"reason"`
		} `json:"runs"`
	}
	c.okJSON(&detail, "flow", "show", strconv.FormatInt(flows[0].ID, 10))
	require.Len(t, detail.Runs, 1)
	require.Equal(t, "commit to repo", detail.Runs[0].Reason)

	// Two more polls without a commit: still one flow.
	p2 := lastPoll()
	waitFor(t, 15*time.Second, "another poll", func() bool { return lastPoll().After(p2) })
	p3 := lastPoll()
	waitFor(t, 15*time.Second, "another poll", func() bool { return lastPoll().After(p3) })
	c.okJSON(&flows, "flow", "list", "polled/main")
	require.Len(t, flows, 1)

	// The branch moves on before an agent runs the first flow's job: its git
	// step still checks out the flow's trigger commit, not the branch head.
	git("commit", "-q", "--allow-empty", "-m", "fourth")
	waitFor(t, 15*time.Second, "a flow for the fourth commit", func() bool {
		c.okJSON(&flows, "flow", "list", "polled/main")
		return len(flows) == 2
	})
	c.authorizedAgent("poller-agent")
	first := flows[1].ID
	var f flowJSON
	waitFor(t, 60*time.Second, "the first flow to complete", func() bool {
		f = c.flow(first)
		return f.State == "completed"
	})
	log := c.ok("job", "logs", strconv.FormatInt(f.Runs[0].Jobs[0].ID, 10))
	require.Contains(t, log, "git: checked out "+newest[:12], "the trigger's newest commit:\n%s", log)
	require.Contains(t, log, "the flow's trigger commit")
	require.Contains(t, log, "third: the newest")
}
