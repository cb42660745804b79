package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/blob/blobtest"
	"github.com/kraken-go/kk/pkg/executor/docker/dockertest"
)

// toolsRepo creates a git repository on the host (file://) with a file to
// print and a JUnit report to collect; it returns its URL.
func toolsRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "app.git")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "reports"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from the repo\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "reports", "junit.xml"), []byte(`<?xml version="1.0"?>
<testsuites>
  <testsuite name="app" tests="2">
    <testcase classname="app.core" name="test_add" time="0.01"/>
    <testcase classname="app.core" name="test_sub" time="0.02"/>
  </testsuite>
</testsuites>
`), 0o644))
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "."},
		{"-c", "user.name=kk", "-c", "user.email=kk@example.com", "commit", "-q", "-m", "first commit"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
	}
	return "file://" + dir
}

// toolsStages returns a build stage (git, shell, cache restore/save, junit
// collect, artifacts upload) and a deploy child stage (artifacts download)
// running in the given environment.
func toolsStages(repo, environment string) (build, deploy string) {
	build = `def stage(ctx):
    return {
        "parent": "root",
        "triggers": {"parent": True},
        "jobs": [{
            "name": "build",
            "timeout": 180,
            "steps": [
                {"tool": "git", "checkout": "` + repo + `", "branch": "main", "destination": "src"},
                {"tool": "shell", "cmd": "cat src/hello.txt; command -v git || echo no-git-here"},
                {"tool": "cache", "action": "restore", "keys": ["deps-v1"]},
                {"tool": "shell", "script": """
if [ -f deps/lib.txt ]; then echo "cache-hit $(cat deps/lib.txt)"; else mkdir -p deps; echo "lib-of-flow-$KK_FLOW_SEQ" > deps/lib.txt; echo cache-cold; fi
"""},
                {"tool": "cache", "action": "save", "key": "deps-v1", "paths": ["deps"]},
                {"tool": "shell", "cmd": "mkdir -p out/sub && echo app-$KK_FLOW_SEQ > out/app.bin && echo docs > out/sub/readme.txt"},
                {"tool": "junit_collect", "file_glob": "src/reports/*.xml"},
                {"tool": "artifacts", "source": "out/**"},
            ],
            "environments": [` + environment + `],
        }],
    }
`
	deploy = `def stage(ctx):
    return {
        "parent": "build",
        "triggers": {"parent": True},
        "jobs": [{
            "name": "deploy",
            "timeout": 120,
            "steps": [
                {"tool": "artifacts", "action": "download", "source": "out/**", "destination": "got"},
                {"tool": "shell", "cmd": "echo deployed $(cat got/out/app.bin) $(cat got/out/sub/readme.txt)"},
            ],
            "environments": [` + environment + `],
        }],
    }
`
	return build, deploy
}

type artifactJSON struct {
	ID    int64  `json:"id"`
	RunID int64  `json:"run_id"`
	Path  string `json:"path"`
	Size  int64  `json:"size"`
}

// runToolsFlows runs two flows of the tools stages and checks every tool's
// effect: the repo was checked out, the cache is cold then hit, the JUnit
// tests are results of the run, artifacts go from build to deploy and can be
// listed and fetched with kk.
func runToolsFlows(t *testing.T, c *cluster, branch string) (lastBuildLog string) {
	t.Helper()
	for seq := 1; seq <= 2; seq++ {
		r := c.kk("flow", "run", branch, "--wait", "-o", "json")
		var f flowJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &f), "flow run printed: %s %s", r.stdout, r.stderr)
		f = c.flow(f.ID)
		require.Len(t, f.Runs, 2, "the deploy stage runs after build")
		build, deploy := f.Runs[0], f.Runs[1]
		if build.Name != "build" {
			build, deploy = deploy, build
		}
		buildLog := c.ok("job", "logs", strconv.FormatInt(build.Jobs[0].ID, 10))
		deployLog := c.ok("job", "logs", strconv.FormatInt(deploy.Jobs[0].ID, 10))
		require.Equal(t, 0, r.code, "flow %d failed:\nbuild:\n%s\ndeploy:\n%s", seq, buildLog, deployLog)

		require.Contains(t, buildLog, "hello from the repo", "the git step checked the repo out")
		require.Contains(t, buildLog, "first commit", "the git step shows the commit it checked out")
		if seq == 1 {
			require.Contains(t, buildLog, "cache-cold")
		} else {
			require.Contains(t, buildLog, "cache-hit lib-of-flow-1", "the second flow restores the first flow's cache")
		}
		require.Contains(t, deployLog, "deployed app-"+strconv.Itoa(seq)+" docs", "the child stage downloads this flow's artifacts")

		var results []testResultJSON
		c.okJSON(&results, "run", "results", strconv.FormatInt(build.ID, 10))
		names := map[string]string{}
		for _, res := range results {
			names[res.Name] = res.Status
		}
		require.Equal(t, map[string]string{"app.core::test_add": "passed", "app.core::test_sub": "passed"}, names)

		var arts []artifactJSON
		c.okJSON(&arts, "artifacts", "list", "flow/"+strconv.FormatInt(f.ID, 10))
		paths := map[string]artifactJSON{}
		for _, a := range arts {
			paths[a.Path] = a
		}
		require.Contains(t, paths, "out/app.bin", "artifacts: %+v", arts)
		require.Contains(t, paths, "out/sub/readme.txt", "artifacts: %+v", arts)
		dst := filepath.Join(t.TempDir(), "app.bin")
		c.ok("artifacts", "get", strconv.FormatInt(paths["out/app.bin"].ID, 10), "-O", dst)
		got, err := os.ReadFile(dst)
		require.NoError(t, err)
		require.Equal(t, "app-"+strconv.Itoa(seq)+"\n", string(got))
		lastBuildLog = buildLog
	}
	return lastBuildLog
}

// TestToolsLocal: git (file:// repo), shell, cache, junit_collect and
// artifacts upload/download across stages on the local executor.
func TestToolsLocal(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	build, deploy := toolsStages(toolsRepo(t), `{"agents_group": "all", "system": "any", "config": "default"}`)
	c.ok("project", "create", "tools")
	c.ok("branch", "create", "tools/main")
	c.ok("stage", "apply", "tools/main", writeFile(t, "build.py", build), "--name", "build")
	c.ok("stage", "apply", "tools/main", writeFile(t, "deploy.py", deploy), "--name", "deploy")
	c.authorizedAgent("tools-agent")
	runToolsFlows(t, c, "tools/main")
}

// TestToolsInBusyboxContainer: the same tools inside a container whose image
// has nothing but busybox: no git, no python, no curl (issue 4 acceptance 3).
func TestToolsInBusyboxContainer(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	image := dockertest.BusyboxImage(t, cli)
	c := newCluster(t)
	build, deploy := toolsStages(toolsRepo(t), `{"agents_group": "all", "executor": "docker", "system": "`+image+`", "config": "default"}`)
	c.ok("project", "create", "boxed")
	c.ok("branch", "create", "boxed/main")
	c.ok("stage", "apply", "boxed/main", writeFile(t, "build.py", build), "--name", "build")
	c.ok("stage", "apply", "boxed/main", writeFile(t, "deploy.py", deploy), "--name", "deploy")
	c.authorizedAgent("boxed-agent")
	log := runToolsFlows(t, c, "boxed/main")
	require.Contains(t, log, "no-git-here", "the image has no git: the checkout came from the agent")
}

// TestToolsOnMinIO: the same flows with kkd's blob store on a real MinIO
// server: artifacts and caches round-trip through S3, and the agent's log
// never mentions the store's credentials.
func TestToolsOnMinIO(t *testing.T) {
	t.Parallel()
	m := blobtest.StartMinIO(t)
	c := newCluster(t, "--storage", m.URL("kk-e2e"))
	build, deploy := toolsStages(toolsRepo(t), `{"agents_group": "all", "system": "any", "config": "default"}`)
	c.ok("project", "create", "s3")
	c.ok("branch", "create", "s3/main")
	c.ok("stage", "apply", "s3/main", writeFile(t, "build.py", build), "--name", "build")
	c.ok("stage", "apply", "s3/main", writeFile(t, "deploy.py", deploy), "--name", "deploy")
	agent := c.authorizedAgent("s3-agent")
	runToolsFlows(t, c, "s3/main")
	for _, secret := range []string{m.AccessKey, m.SecretKey} {
		require.NotContains(t, agent.Output(), secret, "the agent must never see the blob store's credentials")
	}
	require.NotContains(t, c.kkd.Output(), m.SecretKey, "kkd must not log the blob store's secret key")
}
