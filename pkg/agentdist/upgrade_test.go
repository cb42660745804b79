package agentdist

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// buildDir holds the binaries the tests build (world-readable: one test runs
// an agent as another user).
var buildDir string

func TestMain(m *testing.M) {
	if mode := os.Getenv("FAKE_WORKER"); mode != "" {
		fakeWorker(mode) // this process is a supervisor test's worker
	}
	dir, err := os.MkdirTemp("", "agentdist-bin-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "create build dir:", err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type buildResult struct {
	once sync.Once
	path string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*buildResult{}
)

// binary builds the main package pkg with version stamped in, once per test
// run, and returns its path.
func binary(t *testing.T, pkg, version string) string {
	t.Helper()
	key := pkg + "@" + version
	buildsMu.Lock()
	b, ok := builds[key]
	if !ok {
		b = &buildResult{}
		builds[key] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		b.path = filepath.Join(buildDir, fmt.Sprintf("kkagent-%s-%d", version, len(key)))
		cmd := exec.Command("go", "build", "-o", b.path,
			"-ldflags", "-X github.com/kraken-go/kk/pkg/version.Version="+version, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	require.NoError(t, b.err)
	return b.path
}

func kkagentV(t *testing.T, version string) string {
	return binary(t, "github.com/kraken-go/kk/cmd/kkagent", version)
}

func crashWorker(t *testing.T) string { return binary(t, "./testdata/crashworker", "vbad") }

// copyTo copies an executable with cp, so that no fd open for writing leaks
// into a child another test forks meanwhile ("text file busy" at exec).
func copyTo(t *testing.T, src, dst string) {
	t.Helper()
	out, err := exec.Command("cp", src, dst).CombinedOutput()
	require.NoError(t, err, "cp: %s", out)
	require.NoError(t, os.Chmod(dst, 0o755))
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	s, err := fileSHA256(path)
	require.NoError(t, err)
	return s
}

// distServer serves NewHandler over dir and counts requests per route.
type distServer struct {
	*httptest.Server
	dir              string
	sums, downloads  atomic.Int32
	registerRequests atomic.Int32
}

func newDistServer(t *testing.T, serve string) *distServer {
	t.Helper()
	d := &distServer{dir: t.TempDir()}
	if serve != "" {
		copyTo(t, serve, filepath.Join(d.dir, BinaryName(runtime.GOOS, runtime.GOARCH)))
	}
	h := NewHandler(Config{Dir: d.dir})
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+BinaryRoute, func(w http.ResponseWriter, r *http.Request) {
		d.downloads.Add(1)
		h.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET "+SHA256Route, func(w http.ResponseWriter, r *http.Request) {
		d.sums.Add(1)
		h.ServeHTTP(w, r)
	})
	// Enough of kkd's agent protocol for a worker to wait for authorization.
	mux.HandleFunc("POST /api/v1/agent/register", func(w http.ResponseWriter, r *http.Request) {
		d.registerRequests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"agent_id": 1, "name": "a", "authorized": false, "message": "waiting for authorization"}`))
	})
	d.Server = httptest.NewServer(mux)
	t.Cleanup(d.Close)
	return d
}

func newTestUpgrader(t *testing.T, url, exe string) *Upgrader {
	t.Helper()
	u, err := NewUpgrader(UpgraderConfig{ServerURL: url, Exe: exe, DataDir: t.TempDir(), Version: "v1", Interval: time.Hour})
	require.NoError(t, err)
	return u
}

func TestUpgraderInstallsServedBinary(t *testing.T) {
	t.Parallel()
	v1, v2 := kkagentV(t, "v1"), kkagentV(t, "v2")
	srv := newDistServer(t, v2)
	exe := filepath.Join(t.TempDir(), "kkagent")
	copyTo(t, v1, exe)
	u := newTestUpgrader(t, srv.URL, exe)
	assert.Equal(t, fileSum(t, v1), u.SelfSHA256())

	ok, err := u.MaybeUpgrade(t.Context())
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, fileSum(t, v2), fileSum(t, exe), "the executable's path holds the new binary")
	assert.Equal(t, fileSum(t, v1), fileSum(t, filepath.Join(filepath.Dir(exe), OldName)), "the old one is kept for rollback")
	assert.NoFileExists(t, filepath.Join(filepath.Dir(exe), NewName))
	fi, err := os.Stat(exe)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	out, err := exec.Command(exe, "version").Output()
	require.NoError(t, err)
	assert.Equal(t, "kkagent v2\n", string(out))

	// At most one check per interval.
	ok, err = u.MaybeUpgrade(t.Context())
	require.NoError(t, err)
	assert.False(t, ok)
	assert.EqualValues(t, 1, srv.sums.Load())
	assert.EqualValues(t, 1, srv.downloads.Load())
}

func TestUpgraderNothingToInstall(t *testing.T) {
	t.Parallel()
	v1, v2 := kkagentV(t, "v1"), kkagentV(t, "v2")
	for _, tc := range []struct {
		name    string
		serve   string
		setup   func(t *testing.T, exeDir string)
		wantErr string
	}{
		{name: "same binary", serve: v1},
		{name: "no binary for the platform", serve: ""},
		{name: "rolled back before", serve: v2, setup: func(t *testing.T, exeDir string) {
			require.NoError(t, os.WriteFile(filepath.Join(exeDir, RejectedName), []byte(fileSum(t, v2)+"\n"), 0o644))
		}},
		{name: "kkd unreachable", serve: v2, wantErr: "ask kkd for the kkagent checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newDistServer(t, tc.serve)
			exe := filepath.Join(t.TempDir(), "kkagent")
			copyTo(t, v1, exe)
			if tc.setup != nil {
				tc.setup(t, filepath.Dir(exe))
			}
			url := srv.URL
			if tc.wantErr != "" {
				srv.Close()
			}
			ok, err := newTestUpgrader(t, url, exe).MaybeUpgrade(t.Context())
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
			} else {
				assert.NoError(t, err)
			}
			assert.False(t, ok)
			assert.Zero(t, srv.downloads.Load())
			assert.Equal(t, fileSum(t, v1), fileSum(t, exe))
			assert.NoFileExists(t, filepath.Join(filepath.Dir(exe), OldName))
		})
	}
}

func TestUpgraderRefusesBadDownloads(t *testing.T) {
	t.Parallel()
	v1, v2 := kkagentV(t, "v1"), kkagentV(t, "v2")
	v1data, err := os.ReadFile(v1)
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		header  string // X-Checksum-Sha256 of the download
		wantErr string
	}{
		{name: "corrupted in transit", wantErr: "the received binary's SHA-256 is " + fileSum(t, v1)},
		{name: "replaced meanwhile", header: fileSum(t, v1), wantErr: "kkd replaced the binary meanwhile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			mux.HandleFunc("GET "+SHA256Route, func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintln(w, fileSum(t, v2))
			})
			mux.HandleFunc("GET "+BinaryRoute, func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set(ChecksumHeader, tc.header)
				}
				_, _ = w.Write(v1data) // not what was announced
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			exe := filepath.Join(t.TempDir(), "kkagent")
			copyTo(t, v1, exe)
			ok, err := newTestUpgrader(t, srv.URL, exe).MaybeUpgrade(t.Context())
			assert.ErrorContains(t, err, tc.wantErr)
			assert.False(t, ok)
			assert.Equal(t, fileSum(t, v1), fileSum(t, exe))
			assert.NoFileExists(t, filepath.Join(filepath.Dir(exe), NewName))
		})
	}
}

func TestUpgraderSmokeTestFailure(t *testing.T) {
	t.Parallel()
	v1 := kkagentV(t, "v1")
	broken := filepath.Join(t.TempDir(), "broken")
	require.NoError(t, os.WriteFile(broken, []byte("#!/bin/sh\necho 'segmentation fault' >&2\nexit 139\n"), 0o755))
	srv := newDistServer(t, broken)
	exe := filepath.Join(t.TempDir(), "kkagent")
	copyTo(t, v1, exe)
	u, err := NewUpgrader(UpgraderConfig{ServerURL: srv.URL, Exe: exe, DataDir: t.TempDir(), Interval: time.Nanosecond})
	require.NoError(t, err)
	for range 3 {
		ok, err := u.MaybeUpgrade(t.Context())
		require.NoError(t, err)
		assert.False(t, ok)
	}
	assert.EqualValues(t, 3, srv.sums.Load(), "kkd is asked again at every check")
	assert.EqualValues(t, 1, srv.downloads.Load(), "a binary that failed its smoke test is not downloaded again")
	assert.Equal(t, fileSum(t, v1), fileSum(t, exe))
	assert.NoFileExists(t, filepath.Join(filepath.Dir(exe), NewName))
}

// agentProc is a `kkagent run` process (supervisor and worker).
type agentProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startAgent(t *testing.T, exe, url, dataDir string, asUser *syscallCredential) *agentProc {
	t.Helper()
	p := &agentProc{out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(exe, "run", "-s", url, "-d", dataDir, "--name", "upgrader", "--log-level", "debug")
	p.cmd.Env = append(os.Environ(), "KKAGENT_SELF_UPGRADE=", EnvUpgraded+"=")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = procAttr(asUser)
	require.NoError(t, startCmd(p.cmd))
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		killGroup(p.cmd.Process.Pid)
		<-p.done
		if t.Failed() {
			t.Logf("kkagent output:\n%s", p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM to the supervisor only and returns its exit code.
func (p *agentProc) stop(t *testing.T) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sigterm))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("kkagent did not stop within 30s of SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *agentProc) waitOutput(t *testing.T, within time.Duration, what string, cond func(out string) bool) {
	t.Helper()
	pollUntil(t, within, what, func() bool {
		select {
		case <-p.done:
			t.Fatalf("kkagent exited while waiting for %s", what)
		default:
		}
		return cond(p.out.String())
	})
}

var startingV2 = regexp.MustCompile(`(?m)^.*msg="kkagent starting".* version=v2 .*$`)

func TestSupervisedSelfUpgrade(t *testing.T) {
	t.Parallel()
	v1, v2 := kkagentV(t, "v1"), kkagentV(t, "v2")
	srv := newDistServer(t, v2)
	exe := filepath.Join(t.TempDir(), "kkagent")
	copyTo(t, v1, exe)
	p := startAgent(t, exe, srv.URL, t.TempDir(), nil)

	p.waitOutput(t, 60*time.Second, "the worker to run v2", func(out string) bool {
		return startingV2.MatchString(out)
	})
	out := p.out.String()
	assert.Contains(t, out, "kkagent upgraded; restarting on the new binary")
	assert.Contains(t, out, "restarting the supervisor on it")
	assert.Contains(t, out, "started on a new kkagent binary", "the supervisor was re-executed on v2")
	assert.NotContains(t, out, "worker crashed")
	assert.Equal(t, fileSum(t, v2), fileSum(t, exe))
	assert.Equal(t, fileSum(t, v1), fileSum(t, filepath.Join(filepath.Dir(exe), OldName)))

	worker := lastWorkerPID(t, p.out.String())
	assert.Equal(t, 0, p.stop(t), "SIGTERM stops worker and supervisor cleanly")
	assert.False(t, processAlive(worker), "the worker is gone")
}

func TestSupervisedRollback(t *testing.T) {
	t.Parallel()
	v1, bad := kkagentV(t, "v1"), crashWorker(t)
	srv := newDistServer(t, bad)
	exe := filepath.Join(t.TempDir(), "kkagent")
	copyTo(t, v1, exe)
	p := startAgent(t, exe, srv.URL, t.TempDir(), nil)

	p.waitOutput(t, 60*time.Second, "the rollback and v1 running again", func(out string) bool {
		_, after, ok := strings.Cut(out, "rolled back to the previous kkagent")
		return ok && strings.Contains(after, "not installing it again")
	})
	out := p.out.String()
	assert.Equal(t, 2, strings.Count(out, "crashworker: simulated worker crash"), "rolled back at the second quick crash")
	_, after, _ := strings.Cut(out, "rolled back to the previous kkagent")
	assert.Regexp(t, `msg="kkagent starting".* version=v1 `, after, "the restored binary runs")
	assert.Equal(t, fileSum(t, v1), fileSum(t, exe))
	assert.True(t, rejected(filepath.Dir(exe), fileSum(t, bad)))
	assert.Equal(t, 0, p.stop(t))
}

func TestSupervisedUpgradeWithReadOnlyExeDir(t *testing.T) {
	t.Parallel()
	v1, v2 := kkagentV(t, "v1"), kkagentV(t, "v2")
	srv := newDistServer(t, v2)
	// The binary's directory is not writable by the agent's user: as root the
	// agent runs as nobody, otherwise the directory is made read-only.
	base, err := os.MkdirTemp("", "agentdist-ro-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(base, "bin"), 0o755); _ = os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755))
	exeDir, dataDir := filepath.Join(base, "bin"), filepath.Join(base, "data")
	require.NoError(t, os.Mkdir(exeDir, 0o755))
	require.NoError(t, os.Mkdir(dataDir, 0o700))
	exe := filepath.Join(exeDir, "kkagent")
	copyTo(t, v1, exe)
	user := unprivilegedUser(t, dataDir)
	if user == nil {
		require.NoError(t, os.Chmod(exeDir, 0o555))
	}
	p := startAgent(t, exe, srv.URL, dataDir, user)

	p.waitOutput(t, 60*time.Second, "the warning that the binary cannot be replaced", func(out string) bool {
		return strings.Contains(out, "cannot replace "+exe)
	})
	assert.Equal(t, fileSum(t, v2), fileSum(t, filepath.Join(dataDir, "bin", NewName)), "downloaded for an admin to install")
	assert.Equal(t, fileSum(t, v1), fileSum(t, exe), "still running v1")
	assert.Equal(t, 1, strings.Count(p.out.String(), "worker started"), "the worker keeps running")
	assert.Equal(t, 0, p.stop(t))
}
