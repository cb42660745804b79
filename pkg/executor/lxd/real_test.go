//go:build reallxd

package lxd

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/executor"
)

// TestRealLXD runs the executor against a real LXD. It is built only with
// the reallxd tag (`make test-lxd`), because a fresh machine of this kind has
// no LXD daemon: KK_TEST_LXD_ALIAS names an image alias there (a busybox rootfs
// is enough; the socket comes from LXD_SOCKET or the default paths).
func TestRealLXD(t *testing.T) {
	alias := os.Getenv("KK_TEST_LXD_ALIAS")
	if alias == "" {
		t.Fatal("set KK_TEST_LXD_ALIAS to an image alias of the LXD to test against (e.g. a busybox rootfs imported with lxc image import)")
	}
	helper := filepath.Join(t.TempDir(), "kkagent")
	build := exec.Command("go", "build", "-o", helper, "github.com/kraken-go/kk/cmd/kkagent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	e, err := New(Config{DataDir: t.TempDir(), AgentID: "kk-real-lxd-test", Helper: helper})
	require.NoError(t, err)
	ctx := context.Background()
	require.True(t, e.Capabilities(ctx).Available)

	env, err := e.Prepare(ctx, executor.JobSpec{JobID: 1, Attempt: 1, System: alias})
	require.NoError(t, err)
	var buf syncBuffer
	res, err := env.Run(ctx, executor.Command{
		Argv: []string{"sh", "-c", "echo x > f; echo out; echo err >&2; exit 4"}, Output: &buf,
	})
	require.NoError(t, err)
	assert.Equal(t, 4, res.ExitCode)
	assert.Equal(t, "out\nerr\n", buf.String())
	assert.FileExists(t, filepath.Join(env.Workspace(), "f"))

	start := time.Now()
	res, err = env.Run(ctx, executor.Command{Argv: []string{"sleep", "30"}, Timeout: 500 * time.Millisecond, Grace: 200 * time.Millisecond})
	require.NoError(t, err)
	assert.True(t, res.TimedOut)
	assert.Less(t, time.Since(start), 3*time.Second)
	require.NoError(t, env.Close(ctx))
	assert.Zero(t, e.KillLeftovers())
}
