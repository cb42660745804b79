package local

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestKillLeftovers: a step group recorded by an agent process that died is
// killed by the next one; a record whose pid now belongs to another process
// (start time differs) is dropped without killing anything.
func TestKillLeftovers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A "step" of a dead agent: its own process group with a grandchild.
	orphan := exec.Command("sh", "-c", "sleep 100 & sleep 100")
	orphan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, orphan.Start())
	waited := make(chan struct{})
	go func() { _ = orphan.Wait(); close(waited) }()
	t.Cleanup(func() { _ = syscall.Kill(-orphan.Process.Pid, syscall.SIGKILL) })

	dead := New(dir, nil)
	dead.recordGroup(orphan.Process.Pid)
	// A record for a recycled pid: a live process (a sleeper of our own) whose
	// start time is not the recorded one.
	bystander := exec.Command("sleep", "100")
	bystander.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, bystander.Start())
	t.Cleanup(func() { _ = bystander.Process.Kill(); _, _ = bystander.Process.Wait() })
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pgroups", strconv.Itoa(bystander.Process.Pid)), []byte("1"), 0o600))

	require.Equal(t, 1, New(dir, nil).KillLeftovers())
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the orphaned step group was not killed")
	}
	require.True(t, alive(bystander.Process.Pid), "a process that only reuses a recorded pid must survive")
	entries, err := os.ReadDir(filepath.Join(dir, "pgroups"))
	require.NoError(t, err)
	require.Empty(t, entries, "records are dropped once handled")
	require.Zero(t, New(dir, nil).KillLeftovers())
}
