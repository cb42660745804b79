package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// stageRepo is a git repository on the host holding stage files.
type stageRepo struct {
	t   *testing.T
	dir string
}

func newStageRepo(t *testing.T) *stageRepo {
	t.Helper()
	r := &stageRepo{t: t, dir: filepath.Join(t.TempDir(), "ci-config")}
	require.NoError(t, os.MkdirAll(r.dir, 0o755))
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *stageRepo) url() string { return "file://" + r.dir }

func (r *stageRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=kk", "-c", "user.email=kk@example.com"}, args...)...)
	cmd.Dir = r.dir
	out, err := cmd.CombinedOutput()
	require.NoError(r.t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// commit writes path and commits it; it returns the commit sha.
func (r *stageRepo) commit(path, content string) string {
	r.t.Helper()
	full := filepath.Join(r.dir, path)
	require.NoError(r.t, os.MkdirAll(filepath.Dir(full), 0o755))
	require.NoError(r.t, os.WriteFile(full, []byte(content), 0o644))
	r.git("add", ".")
	r.git("commit", "-q", "-m", "change "+path)
	return r.git("rev-parse", "HEAD")
}

func repoStage(job string) string {
	return `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{"name": "` + job + `", "steps": [{"tool": "shell", "cmd": "echo ` + job + `"}],
                  "environments": [{"agents_group": "all", "system": "any", "config": "default"}]}],
    }
`
}

type stageJSON struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Code string `json:"code"`
	Repo *struct {
		URL     string `json:"url"`
		Version string `json:"version"`
		Error   string `json:"error"`
	} `json:"repo"`
}

// jobNames are the job names of the flow's runs.
func jobNames(f flowJSON) []string {
	var out []string
	for _, r := range f.Runs {
		for _, j := range r.Jobs {
			out = append(out, j.Name)
		}
	}
	return out
}

func TestStageFromRepo(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	repo := newStageRepo(t)
	v1 := repo.commit(".kraken/build.py", repoStage("job-v1"))
	c.ok("project", "create", "fromrepo")
	c.ok("branch", "create", "fromrepo/main", "--repo-branch", "main")

	// Bad input changes nothing.
	r := c.kk("stage", "apply", "fromrepo/main", "--repo", repo.url(), "--repo-branch", "main", "--repo-path", "nope.py")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, `file "nope.py" does not exist in branch main`)
	r = c.kk("stage", "apply", "fromrepo/main", "--repo", repo.url(), "--repo-branch", "main", "--repo-path", ".kraken/build.py", "--refresh", "5s")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "shorter than 1m0s")
	r = c.kk("stage", "apply", "fromrepo/main", "--repo", repo.url(), "--repo-branch", "main", "--repo-path", ".kraken/build.py", "--repo-token-secret", "missing")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, `access token secret "missing" does not exist`)
	var stages []stageJSON
	c.okJSON(&stages, "stage", "list", "fromrepo/main")
	require.Empty(t, stages)

	r = c.kk("stage", "apply", "fromrepo/main", "--repo", repo.url(), "--repo-branch", "main", "--repo-path", ".kraken/build.py")
	require.Equal(t, 0, r.code, "%s", r.stderr)
	require.Contains(t, r.stderr, "applied stage build to fromrepo/main")
	require.Contains(t, r.stderr, "at "+v1[:12])
	show := c.ok("stage", "show", "fromrepo/main", "build")
	require.Contains(t, show, "Repo version:  "+v1)
	require.Contains(t, show, "Repo path:     .kraken/build.py")

	var f flowJSON
	c.okJSON(&f, "flow", "run", "fromrepo/main")
	require.Equal(t, []string{"job-v1"}, jobNames(c.flow(f.ID)))

	// A push: the signed webhook refreshes the stage before its flow starts.
	v2 := repo.commit(".kraken/build.py", repoStage("job-v2"))
	var setup struct {
		Secret string `json:"secret"`
	}
	c.okJSON(&setup, "project", "webhook", "fromrepo")
	push, err := json.Marshal(map[string]any{
		"ref": "refs/heads/main", "before": v1, "after": v2,
		"repository": map[string]any{"clone_url": repo.url() + ".git"},
		"commits":    []map[string]any{{"id": v2, "message": "v2"}},
	})
	require.NoError(t, err)
	status, out := c.postGitHub("fromrepo", "push", "repo-1", setup.Secret, push)
	require.Equal(t, http.StatusCreated, status, "%s", out)
	var res struct {
		Flows []struct {
			ID int64 `json:"id"`
		} `json:"flows"`
	}
	require.NoError(t, json.Unmarshal(out, &res))
	require.Len(t, res.Flows, 1)
	require.Equal(t, []string{"job-v2"}, jobNames(c.flow(res.Flows[0].ID)), "the webhook's flow runs the pushed code")
	c.okJSON(&stages, "stage", "list", "fromrepo/main")
	require.Len(t, stages, 1)
	require.Equal(t, v2, stages[0].Repo.Version)
	require.Empty(t, stages[0].Repo.Error)

	// A broken commit: the error is shown with its position, the last good code stays.
	repo.commit(".kraken/build.py", "def stage(ctx):\n    return {\"parent\": \"root\", \"jobs\": [{\"name\": \"x\", \"stepz\": []}]}\n")
	r = c.kk("stage", "refresh", "fromrepo/main", "build")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "the refresh failed")
	require.Contains(t, r.stdout, "Repo error:")
	require.Contains(t, r.stdout, ".kraken/build.py:2:")
	list := c.ok("stage", "list", "fromrepo/main")
	require.Contains(t, list, v2[:12])
	require.Contains(t, list, "schema has")
	require.Equal(t, repoStage("job-v2"), c.ok("stage", "show", "fromrepo/main", "build", "--code"))
	c.okJSON(&f, "flow", "run", "fromrepo/main")
	require.Equal(t, []string{"job-v2"}, jobNames(c.flow(f.ID)), "a run keeps using the last good code")

	// Fixed again: `kk stage refresh` picks it up.
	v4 := repo.commit(".kraken/build.py", repoStage("job-v4"))
	c.ok("stage", "refresh", "fromrepo/main", "build")
	c.okJSON(&f, "flow", "run", "fromrepo/main")
	require.Equal(t, []string{"job-v4"}, jobNames(c.flow(f.ID)))
	c.okJSON(&stages, "stage", "list", "fromrepo/main")
	require.Equal(t, v4, stages[0].Repo.Version)
	require.Empty(t, stages[0].Repo.Error)
	require.Contains(t, c.kkd.Output(), "stage refreshed by a push")
}
