package agentcmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		code    int
		stdout  string
		stderr  string
		datadir string
	}{
		{name: "version", args: []string{"version"}, code: 0, stdout: "kkagent "},
		{name: "unknown command", args: []string{"bogus"}, code: 2, stderr: "unknown command"},
		{name: "unknown flag", args: []string{"run", "--bogus"}, code: 2, stderr: "unknown flag"},
		{name: "no server", args: []string{"run", "-d", dir}, code: 2, stderr: "KRAKEN_SERVER_ADDR"},
		{name: "bad log level", args: []string{"run", "-s", "x:1", "--log-level", "loud"}, code: 2, stderr: "--log-level"},
		{name: "bad server", args: []string{"run", "-s", "ftp://x", "-d", dir}, code: 2, stderr: "scheme"},
		{name: "bad second server named", args: []string{"run", "-s", "127.0.0.1:1,ftp://y", "-d", dir}, code: 2, stderr: `"ftp://y"`},
		{name: "bad repeated server named", args: []string{"run", "-s", "127.0.0.1:1", "-s", "http://", "-d", dir}, code: 2, stderr: `"http://" has no host`},
		{name: "bad server in env named", env: map[string]string{"KRAKEN_SERVER_ADDR": "127.0.0.1:1, ftp://z"}, args: []string{"run", "-d", dir}, code: 2, stderr: `"ftp://z"`},
		{
			name: "several servers, stopped at once", args: []string{"run", "--no-supervisor", "-s", "127.0.0.1:1,127.0.0.1:2", "-s", "127.0.0.1:3", "-d", filepath.Join(dir, "several")},
			code: 0, datadir: filepath.Join(dir, "several"),
		},
		{
			name: "several servers in env, supervisor stopped at once", args: []string{"run", "-d", filepath.Join(dir, "sup2")},
			env: map[string]string{"KRAKEN_SERVER_ADDR": "127.0.0.1:1,127.0.0.1:2"}, code: 0,
		},
		{name: "bad upgrade interval", args: []string{"run", "-s", "x:1", "-d", dir, "--upgrade-check-interval", "soon"}, code: 2, stderr: "--upgrade-check-interval"},
		{name: "supervisor stopped at once", args: []string{"run", "-s", "127.0.0.1:1", "-d", filepath.Join(dir, "sup")}, code: 0},
		{name: "worker usage error", args: []string{"worker", "--supervised", "-d", dir}, code: 4, stderr: "KRAKEN_SERVER_ADDR"},
		{
			name:    "env config, stopped at once",
			args:    []string{"run", "--no-supervisor", "--group", "a", "--group", "b", "--name", "n1"},
			env:     map[string]string{"KRAKEN_SERVER_ADDR": "127.0.0.1:1", "KKAGENT_DATA_DIR": filepath.Join(dir, "envdir")},
			code:    0,
			datadir: filepath.Join(dir, "envdir"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(cancelled, tc.args, &stdout, &stderr, env(tc.env))
			assert.Equal(t, tc.code, code, "stderr: %s", stderr.String())
			assert.Contains(t, stdout.String(), tc.stdout)
			assert.Contains(t, stderr.String(), tc.stderr)
			if tc.datadir != "" {
				assert.FileExists(t, filepath.Join(tc.datadir, "agent.json"))
			}
		})
	}
}

func TestDataDirInUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := os.OpenFile(filepath.Join(dir, "agent.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	_, err = f.WriteString("4242\n")
	require.NoError(t, err)

	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), []string{"run", "--no-supervisor", "-s", "127.0.0.1:1", "-d", dir}, &stdout, &stderr, env(nil))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "is in use by another kkagent (pid "+strconv.Itoa(4242)+")")
}

func TestDefaultDataDir(t *testing.T) {
	t.Parallel()
	d, err := defaultDataDir(env(map[string]string{"XDG_DATA_HOME": "/x"}))
	require.NoError(t, err)
	if os.Geteuid() == 0 {
		assert.Equal(t, "/var/lib/kkagent", d)
	} else {
		assert.Equal(t, "/x/kkagent", d)
	}
}
