package agentdist

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

type syscallCredential = syscall.Credential

const sigterm = syscall.SIGTERM

// procAttr puts a test's agent in its own process group (so cleanup kills
// supervisor, worker and steps), optionally as another user.
func procAttr(cred *syscallCredential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

func killGroup(pgid int) { _ = syscall.Kill(-pgid, syscall.SIGKILL) }

// unprivilegedUser returns nobody's credential when the tests run as root,
// after giving it dir; otherwise nil (the tests already run unprivileged).
func unprivilegedUser(t *testing.T, dir string) *syscallCredential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	const nobody = 65534
	require.NoError(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, nobody, nobody)
	}))
	return &syscallCredential{Uid: nobody, Gid: nobody}
}

var workerStarted = regexp.MustCompile(`msg="worker started".* pid=(\d+)`)

// lastWorkerPID is the pid of the last worker the supervisor logged.
func lastWorkerPID(t *testing.T, out string) int {
	t.Helper()
	m := workerStarted.FindAllStringSubmatch(out, -1)
	require.NotEmpty(t, m, "no worker started in:\n%s", out)
	pid, err := strconv.Atoi(m[len(m)-1][1])
	require.NoError(t, err)
	return pid
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	st := string(data)
	i := strings.LastIndexByte(st, ')')
	return i < 0 || len(st) < i+3 || st[i+2] != 'Z'
}
