package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
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
echo "networks: $(ls /sys/class/net | tr '\\n' ' ')"
"""},
                {"tool": "shell", "cmd": "echo \"next step reads $(cat shared.txt) as $(id -u) in $(pwd) with $GREETING\"",
                 "user": "builder", "cwd": ".", "env": {"GREETING": "hello"}},
            ],
            "environments": [{"agents_group": "all", "executor": "docker", "system": "` + image + `", "config": "default", "network": "none"}],
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
	require.Contains(t, log, "networks: lo \n", "the environment's network mode applies")

	m := regexp.MustCompile(`container=([0-9a-f]{12})`).FindStringSubmatch(log)
	require.NotNil(t, m, "log:\n%s", log)
	_, err := cli.ContainerInspect(context.Background(), m[1])
	require.True(t, cerrdefs.IsNotFound(err), "container %s is left after the job (err %v)", m[1], err)
}

const sleepingDockerStage = `def stage(ctx):
    return {
        "parent": "root",
        "triggers": {"parent": True},
        "jobs": [{
            "name": "sleepy",
            "timeout": 600,
            "steps": [{"tool": "shell", "cmd": "echo container=$(hostname); sleep 300"}],
            "environments": [{"agents_group": "all", "executor": "docker", "system": "IMAGE", "config": "default"}],
        }],
    }
`

var containerRE = regexp.MustCompile(`container=([0-9a-f]{12})`)

// startedContainer waits for the job to print its container's id and returns it.
func (c *cluster) startedContainer(jobID int64) string {
	c.t.Helper()
	var id string
	waitFor(c.t, 60*time.Second, "docker job to start its step", func() bool {
		m := containerRE.FindStringSubmatch(c.ok("job", "logs", strconv.FormatInt(jobID, 10)))
		if m != nil {
			id = m[1]
		}
		return m != nil
	})
	return id
}

func containerGone(cli *client.Client, id string) bool {
	_, err := cli.ContainerInspect(context.Background(), id)
	return cerrdefs.IsNotFound(err)
}

// TestDockerJobCancelAndAgentCrash: cancelling a docker job removes its
// container within 2 s; the container of a job whose agent was SIGKILLed is
// removed when the agent starts again.
func TestDockerJobCancelAndAgentCrash(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	image := dockertest.BusyboxImage(t, cli)

	c := newCluster(t)
	c.ok("project", "create", "dock")
	c.ok("branch", "create", "dock/main")
	c.ok("stage", "apply", "dock/main", writeFile(t, "sleepy.py", strings.ReplaceAll(sleepingDockerStage, "IMAGE", image)))
	dataDir := filepath.Join(t.TempDir(), "agent")
	agentArgs := []string{"run", "-s", c.url, "-d", dataDir, "--name", "docker-crash"}
	agent := start(t, nil, "kkagent", agentArgs...)
	waitFor(t, 20*time.Second, "agent to be discovered", func() bool { return findAgent(c.agents(true), "docker-crash") != nil })
	c.ok("agent", "authorize", "docker-crash")

	var f flowJSON
	c.okJSON(&f, "flow", "run", "dock/main")
	jobID := f.Runs[0].Jobs[0].ID
	ctr := c.startedContainer(jobID)
	cancelled := time.Now()
	c.ok("job", "cancel", strconv.FormatInt(jobID, 10))
	waitFor(t, 10*time.Second, "container of the cancelled job to go", func() bool { return containerGone(cli, ctr) })
	took := time.Since(cancelled)
	t.Logf("container removed %s after kk job cancel", took.Round(time.Millisecond))
	require.Less(t, took, 2*time.Second)
	waitFor(t, 20*time.Second, "job to complete", func() bool { return c.job(jobID).State == "completed" })
	require.Equal(t, "cancelled", c.job(jobID).Result)

	c.okJSON(&f, "flow", "run", "dock/main")
	jobID = f.Runs[0].Jobs[0].ID
	ctr = c.startedContainer(jobID)
	agent.kill(syscall.SIGKILL)
	require.False(t, containerGone(cli, ctr), "the container outlives the killed agent until it restarts")
	agent = start(t, nil, "kkagent", agentArgs...)
	waitFor(t, 30*time.Second, "restarted agent to remove the container", func() bool { return containerGone(cli, ctr) })

	// The job may run again on the restarted agent: cancel it, and then no
	// container of the agent is left.
	c.ok("job", "cancel", strconv.FormatInt(jobID, 10))
	waitFor(t, 30*time.Second, "job to complete", func() bool { return c.job(jobID).State == "completed" })
	var id struct {
		UUID string `json:"uuid"`
	}
	data, err := os.ReadFile(filepath.Join(dataDir, "agent.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &id))
	require.NotEmpty(t, id.UUID)
	waitFor(t, 10*time.Second, "no container of the agent to be left", func() bool {
		list, err := cli.ContainerList(context.Background(), container.ListOptions{
			All: true, Filters: filters.NewArgs(filters.Arg("label", "kk.agent="+id.UUID)),
		})
		require.NoError(t, err)
		return len(list) == 0
	})
	agent.kill(syscall.SIGTERM)
}
