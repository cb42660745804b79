package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// testRepo is a git repository on the host with two commits on master.
type testRepo struct {
	dir           string
	first, second string // commit ids
}

func (r testRepo) url() string { return "file://" + r.dir }

// makeRepo creates it with go-git; cloning file:// URLs uses the host's
// git-upload-pack (go-git's file transport).
func makeRepo(t *testing.T) testRepo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj.git")
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("master")},
	})
	require.NoError(t, err)
	wt, err := repo.Worktree()
	require.NoError(t, err)
	commit := func(file, content, msg string) string {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, file)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644))
		_, err := wt.Add(file)
		require.NoError(t, err)
		h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "T", Email: "t@example.com", When: time.Now()}})
		require.NoError(t, err)
		return h.String()
	}
	r := testRepo{dir: dir}
	r.first = commit("hello.txt", "hello v1\n", "first commit")
	commit("docs/guide.md", "# guide\n", "add docs")
	r.second = commit("hello.txt", "hello v2\n", "second commit")
	return r
}

func step(tool string, kv ...any) api.AssignedStep {
	f := map[string]any{"tool": tool}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	return api.AssignedStep{Tool: tool, Fields: f}
}

// requireSteps waits for job id and checks every step is ok, showing the
// logs of the others.
func requireJobOK(t *testing.T, s *fakeServer, id int64, n int) *fakeJob {
	t.Helper()
	c := s.completed(id, 60*time.Second)
	s.mu.Lock()
	j := s.job(id)
	statuses := j.stepStatuses(n)
	var logs strings.Builder
	for i := range n {
		fmt.Fprintf(&logs, "--- step %d (%s): %s\n%s", i, statuses[i], j.lastStep(i).Message, j.logText(i))
	}
	s.mu.Unlock()
	want := make([]string, n)
	for i := range want {
		want[i] = "ok"
	}
	require.Equal(t, want, statuses, logs.String())
	require.Equal(t, ci.JobOK, c.Result, c.Message)
	t.Log(logs.String())
	return j
}

// TestToolsOnLocalExecutor runs git, artifacts upload and download, cache
// save and restore, junit_collect, values_collect and data through the
// agent's local executor against the fake kkd.
func TestToolsOnLocalExecutor(t *testing.T) {
	t.Parallel()
	repo := makeRepo(t)
	s := newFakeServer(t)
	builtinAgent(t, s, nil)

	junit := `<testsuites><testsuite name="s"><testcase classname="pkg.A" name="ok" time="0.5"/>` +
		`<testcase classname="pkg.A" name="skip"><skipped message="later"/></testcase></testsuite></testsuites>`
	asg := assignment(1,
		step("git", "checkout", repo.url()),
		shell("cat proj/hello.txt && test -f proj/docs/guide.md && mkdir -p out/sub && echo A > out/a.txt && echo B > out/sub/b.txt"),
		step("artifacts", "source", []any{"out/**/*.txt", "proj/hello.txt"}, "destination", "build", "report_entry", "build/out/a.txt"),
		step("cache", "action", "save", "key", "deps-1", "paths", []any{"out", "proj/docs"}),
		shell("mkdir -p reports && cat > reports/r.xml <<'EOF'\n"+junit+"\nEOF\necho '{\"size\": 42, \"speed\": {\"value\": 3.5, \"iterations\": 2}}' > v.json"),
		step("junit_collect", "file_glob", "reports/*.xml"),
		step("values_collect", "files", []any{map[string]any{"name": "v.json", "namespace": "bench"}}),
		step("data", "value", map[string]any{"answer": 42}, "scope", "branch"),
		step("data", "operation", "get", "scope", "branch", "json_pointer", "/answer", "file", "answer.json"),
		shell("grep -qx 42 answer.json"),
	)
	s.addJob(asg)
	j := requireJobOK(t, s, 1, len(asg.Steps))

	s.mu.Lock()
	gitLog := j.logText(0)
	arts := append([]fakeArtifact(nil), s.assets.artifacts...)
	_, cached := s.assets.caches["deps-1"]
	s.mu.Unlock()
	assert.Contains(t, gitLog, repo.second, "the branch head is checked out")
	assert.Contains(t, gitLog, "second commit")
	assert.Contains(t, j.logText(1), "hello v2")
	var paths []string
	for _, a := range arts {
		paths = append(paths, a.Path)
		if a.Path == "build/out/a.txt" {
			assert.True(t, a.ReportEntry && a.Public, "report_entry implies public")
			assert.Equal(t, "A\n", string(a.data))
		}
	}
	assert.ElementsMatch(t, []string{"build/out/a.txt", "build/out/sub/b.txt", "build/proj/hello.txt"}, paths)
	assert.Contains(t, j.logText(2), "build/out/sub/b.txt 2")
	assert.True(t, cached, "cache saved")

	res := s.finalResults(1)
	assert.Equal(t, api.TestPassed, res["pkg.A::ok"].Status)
	assert.InDelta(t, 0.5, res["pkg.A::ok"].Duration, 1e-9)
	assert.Equal(t, api.TestDisabled, res["pkg.A::skip"].Status)
	assert.Equal(t, "later", res["pkg.A::skip"].Message)
	assert.Equal(t, 42.0, res["bench"].Values["size"].Value)
	assert.Equal(t, 2, res["bench"].Values["speed"].Iterations)
	s.mu.Lock()
	assert.JSONEq(t, `{"answer":42}`, string(s.assets.data[api.ScopeBranch]))
	s.mu.Unlock()

	// A later job of the flow: trigger commit, download, restore.
	trigger, _ := json.Marshal([]map[string]any{{"repo": repo.url(), "after": repo.first}})
	asg2 := assignment(2,
		step("git", "checkout", repo.url(), "destination", "src"),
		shell("grep -q 'hello v1' src/hello.txt"),
		step("artifacts", "action", "download", "source", "build/out/**", "destination", "dl"),
		shell("test \"$(cat dl/build/out/a.txt)\" = A && test \"$(cat dl/build/out/sub/b.txt)\" = B && test ! -e dl/build/proj"),
		step("cache", "action", "restore", "keys", []any{"deps-0", "deps-1"}),
		shell("test \"$(cat out/sub/b.txt)\" = B && test -f proj/docs/guide.md"),
		step("cache", "action", "restore", "key", "never-saved"),
	)
	asg2.Trigger = trigger
	s.addJob(asg2)
	j2 := requireJobOK(t, s, 2, len(asg2.Steps))
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Contains(t, j2.logText(0), repo.first)
	assert.Contains(t, j2.logText(0), "trigger commit")
	assert.Contains(t, j2.logText(4), "no entry under key deps-0")
	assert.Contains(t, j2.logText(4), "restored")
	assert.Contains(t, j2.lastStep(6).Message, "cache miss")
}

// TestToolFailures: a source matching nothing, a missing branch, a path out
// of the workspace and a bad parameter fail their steps with clear messages.
func TestToolFailures(t *testing.T) {
	t.Parallel()
	repo := makeRepo(t)
	for _, tc := range []struct {
		name   string
		step   api.AssignedStep
		status string
		msg    string
	}{
		{"no match", step("artifacts", "source", "nothing/*.bin"), "failed", `source "nothing/*.bin" matches no file`},
		{"missing branch", step("git", "checkout", repo.url(), "branch", "main"), "failed",
			"branch main does not exist in " + repo.url() + "; the repository's default branch is master"},
		{"cache outside", step("cache", "action", "save", "key", "k", "paths", []any{"../../x"}), "error", "outside the job workspace"},
		{"bad action", step("cache", "action", "stash", "key", "k"), "error", `action: want save or restore, got "stash"`},
		{"no secret", step("git", "checkout", repo.url(), "access-token", "tok"), "error", `secret "tok" was not handed to this job`},
		{"download nothing", step("artifacts", "action", "download", "source", "x/*"), "failed", `source "x/*" matches none of the 0 artifacts`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newFakeServer(t)
			builtinAgent(t, s, nil)
			s.addJob(assignment(1, tc.step))
			c := s.completed(1, 30*time.Second)
			assert.Equal(t, ci.JobFailed, c.Result)
			s.mu.Lock()
			defer s.mu.Unlock()
			last := s.job(1).lastStep(0)
			assert.Equal(t, tc.status, string(last.Status))
			assert.Contains(t, last.Message, tc.msg)
		})
	}
}

// TestServicesRetryAndFencing: results are retried through 503s; a 409
// stale_attempt on a results write stops the job without reporting more.
func TestServicesRetryAndFencing(t *testing.T) {
	t.Parallel()
	t.Run("retry", func(t *testing.T) {
		t.Parallel()
		s := newFakeServer(t)
		builtinAgent(t, s, nil)
		s.update(func(s *fakeServer) { s.assets.failResults = 2 })
		s.addJob(assignment(1, step("rndtest", "count", 5, "override_result", 1)))
		requireJobOK(t, s, 1, 1)
		res := s.finalResults(1)
		assert.Len(t, res, 5)
		assert.Equal(t, api.TestPassed, res["tc_0001"].Status)
		s.mu.Lock()
		defer s.mu.Unlock()
		assert.Contains(t, s.job(1).logText(0), "report results failed")
	})
	t.Run("stale", func(t *testing.T) {
		t.Parallel()
		s := newFakeServer(t)
		builtinAgent(t, s, nil)
		s.update(func(s *fakeServer) { s.assets.staleResults = true })
		s.addJob(assignment(1, step("rndtest", "count", 3), shell("echo never")))
		s.await("the agent to go back to polling", 30*time.Second, func(s *fakeServer) bool {
			return len(s.workPolls) >= 2
		})
		s.mu.Lock()
		defer s.mu.Unlock()
		assert.Nil(t, s.job(1).complete, "a fenced-off job reports no completion")
		assert.NotContains(t, s.job(1).logText(1), "never")
	})
}

// TestShellSSHKey: a shell step with ssh-key sees an SSH agent holding the
// key through SSH_AUTH_SOCK; the socket is gone after the step.
func TestShellSSHKey(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ssh-add"); err != nil {
		t.Fatalf("ssh-add (openssh-client) is needed on the host: %v", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	s := newFakeServer(t)
	builtinAgent(t, s, nil)
	asg := assignment(1,
		shell(`ssh-add -l -E sha256 && test -S "$SSH_AUTH_SOCK" && echo "sock=$SSH_AUTH_SOCK"`, "ssh-key", "deploy"),
		shell("! ls -a .kk | grep ssh-"),
	)
	asg.Creds = map[string]api.SecretValue{"deploy": {Kind: api.SecretSSHKey, Key: string(pem.EncodeToMemory(block))}}
	s.addJob(asg)
	j := requireJobOK(t, s, 1, 2)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Contains(t, j.logText(0), ssh.FingerprintSHA256(signer.PublicKey()))
	assert.Contains(t, j.logText(0), "/.kk/ssh-0-")
}

// TestResultsAndDataAreRedacted: a secret a test prints into its failure
// message, or a step stores with the data tool, never reaches kkd.
func TestResultsAndDataAreRedacted(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-t0ken-value"
	s := newFakeServer(t)
	builtinAgent(t, s, nil)
	junit := `<testsuites><testsuite name="s"><testcase classname="pkg.A" name="leak">` +
		`<failure message="token ` + secret + ` rejected">stack with ` + secret + `</failure></testcase></testsuite></testsuites>`
	asg := assignment(1,
		shell("mkdir -p reports && cat > reports/r.xml <<'EOF'\n"+junit+"\nEOF"),
		step("junit_collect", "file_glob", "reports/*.xml"),
		step("data", "value", map[string]any{"token": secret}, "scope", "flow", "when", "always"),
	)
	asg.Secrets = []string{secret}
	s.addJob(asg)
	c := s.completed(1, 30*time.Second)
	assert.Equal(t, ci.JobFailed, c.Result, "junit_collect fails its step when a test failed")

	res := s.finalResults(1)
	require.Contains(t, res, "pkg.A::leak")
	assert.Equal(t, api.TestFailed, res["pkg.A::leak"].Status)
	assert.NotContains(t, res["pkg.A::leak"].Message, secret)
	assert.Contains(t, res["pkg.A::leak"].Message, "***")
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.NotContains(t, string(s.assets.data[api.ScopeFlow]), secret)
}
