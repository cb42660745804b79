package e2e

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/executor/docker/dockertest"
)

func dockerStage(image string) string {
	return `def stage(ctx):
    return {
        "parent": "root",
        "triggers": {"parent": True},
        "jobs": [{
            "name": "in-docker",
            "timeout": 120,
            "steps": [
                {"tool": "shell", "script": """
cat /etc/os-release
echo "container=$(hostname)"
echo from-step-one > shared.txt
"""},
                {"tool": "shell", "cmd": "echo \"next step reads $(cat shared.txt) as $(id -u) in $(pwd) with $GREETING\"",
                 "user": "builder", "cwd": ".", "env": {"GREETING": "hello"}},
            ],
            "environments": [{"agents_group": "all", "executor": "docker", "system": "` + image + `", "config": "default"}],
        }],
    }
`
}

// TestDockerJob runs a job with executor docker on this host's engine through
// real kkd and kkagent: its shell steps run inside a busybox-only container,
// and no container is left afterwards.
func TestDockerJob(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	image := dockertest.BusyboxImage(t, cli)

	c := newCluster(t)
	c.ok("project", "create", "dock")
	c.ok("branch", "create", "dock/main")
	c.ok("stage", "apply", "dock/main", writeFile(t, "docker.py", dockerStage(image)))
	c.authorizedAgent("docker-agent")
	require.NotEmpty(t, findAgent(c.agents(false), "docker-agent").HostInfo.Docker, "the agent reports the engine's version")

	var f flowJSON
	c.okJSON(&f, "flow", "run", "dock/main")
	jobID := f.Runs[0].Jobs[0].ID
	waitFor(t, 90*time.Second, "docker job to complete", func() bool { return c.job(jobID).State == "completed" })
	j := c.job(jobID)
	log := c.ok("job", "logs", strconv.FormatInt(jobID, 10))
	require.Equal(t, "ok", j.Result, "log:\n%s", log)
	require.Contains(t, log, dockertest.OSReleaseName, "the step saw the image's /etc/os-release")
	require.Contains(t, log, "next step reads from-step-one as 1000 in ")
	require.Contains(t, log, "with hello")

	m := regexp.MustCompile(`container=([0-9a-f]{12})`).FindStringSubmatch(log)
	require.NotNil(t, m, "log:\n%s", log)
	_, err := cli.ContainerInspect(context.Background(), m[1])
	require.True(t, client.IsErrNotFound(err), "container %s is left after the job (err %v)", m[1], err)
}
