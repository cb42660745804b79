package inside

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMainIgnoresOtherCommands(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"run"}, {"worker", InitCmd}} {
		_, handled := Main(args)
		assert.False(t, handled, "%v", args)
	}
}

// TestExecKillsItsGroup: __kk-exec returns the command's exit code, records
// the group, and kills the command's background children when it exits.
func TestExecKillsItsGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "cmd.pid")
	bg := filepath.Join(dir, "bg.pid")
	code := runExec([]string{pidfile, "/bin/sh", "-c", "sleep 300 & echo $! > " + bg + "; exit 7"})
	assert.Equal(t, 7, code)
	assert.NoFileExists(t, pidfile, "the record goes with the command")
	data, err := os.ReadFile(bg)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var ws syscall.WaitStatus
		// The child was ours (reparented only if the shell died first); either
		// way it must be gone or a zombie.
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err != nil || strings.Contains(string(st), ") Z ")
	}, 5*time.Second, 20*time.Millisecond)

	assert.Equal(t, 127, runExec([]string{pidfile, "no-such-program-kk"}))
	assert.Equal(t, 0, runSignal([]string{"TERM", filepath.Join(dir, "missing.pid")}), "a command that is gone is fine")
}
