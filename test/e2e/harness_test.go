// Package e2e builds the real kk, kkd and kkagent binaries and drives them the
// way a user would: start kkd on a temporary data dir and free port, start
// agents, use kk for everything.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/executor/docker/dockertest"
	"github.com/kraken-go/kk/pkg/store/pgtest"
)

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "kk-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "../../cmd/kk", "../../cmd/kkd", "../../cmd/kkagent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	dockertest.Cleanup()
	pgtest.Cleanup()
	os.Exit(code)
}

const adminPassword = "e2e-admin-password"

// proc is a running binary with its output captured.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

type lockedWriter struct{ p *proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

func start(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(filepath.Join(binDir, name), args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("output of %s %v:\n%s", name, args, p.Output())
		}
	})
	return p
}

// kill signals the whole process group and waits for the process.
func (p *proc) kill(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	<-p.done
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline, not synchronisation by sleeping
	}
}

var serveRE = regexp.MustCompile(`kkd is serving on (http://\S+)`)

// cluster is a kkd plus a kk configuration logged in as admin.
type cluster struct {
	t       *testing.T
	dataDir string
	url     string
	kkd     *proc
	cfg     string
	extra   []string
}

func newCluster(t *testing.T, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dataDir: t.TempDir(), cfg: filepath.Join(t.TempDir(), "kk.yaml"), extra: extra}
	c.startKKD("127.0.0.1:0")
	res := c.kkIn(adminPassword+"\n", "login", "--server", c.url, "--user", "admin", "--password-stdin")
	require.Equal(t, 0, res.code, "kk login: %s", res.stderr)
	return c
}

func (c *cluster) startKKD(listen string) {
	c.t.Helper()
	args := append([]string{"serve", "--listen", listen, "--data-dir", c.dataDir, "--local-agent=false", "--demo=false"}, c.extra...)
	c.kkd = start(c.t, []string{"KKD_ADMIN_PASSWORD=" + adminPassword}, "kkd", args...)
	waitFor(c.t, 30*time.Second, "kkd to listen", func() bool {
		m := serveRE.FindStringSubmatch(c.kkd.Output())
		if m != nil {
			c.url = m[1]
		}
		return m != nil
	})
}

// restartKKD kills kkd with SIGKILL and starts it again on the same data dir and address.
func (c *cluster) restartKKD() {
	c.t.Helper()
	c.kkd.kill(syscall.SIGKILL)
	c.startKKD(strings.TrimPrefix(c.url, "http://"))
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cluster) kk(args ...string) result { return c.kkIn("", args...) }

func (c *cluster) kkIn(stdin string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kk"), args...)
	cmd.Env = append(os.Environ(), "KK_CONFIG="+c.cfg, "KK_SERVER=", "KK_TOKEN=", "NO_COLOR=1")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run kk %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// ok runs kk and requires success.
func (c *cluster) ok(args ...string) string {
	c.t.Helper()
	r := c.kk(args...)
	require.Equal(c.t, 0, r.code, "kk %v failed: %s%s", args, r.stderr, r.stdout)
	return r.stdout
}

// okJSON runs kk with -o json and decodes stdout into v.
func (c *cluster) okJSON(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "-o", "json")...)
	require.NoError(c.t, json.Unmarshal([]byte(out), v), "kk %v printed: %s", args, out)
}

func (c *cluster) startAgent(name string, extra ...string) *proc {
	c.t.Helper()
	args := append([]string{"run", "-s", c.url, "-d", filepath.Join(c.t.TempDir(), "agent-"+name), "--name", name}, extra...)
	return start(c.t, nil, "kkagent", args...)
}

// writeFile writes a stage file and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// rawRequest sends an HTTP request to kkd and returns status and body.
func (c *cluster) rawRequest(method, path, token string, body io.Reader) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, body)
	require.NoError(c.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp.StatusCode, b
}

// lines streams a process's stdout line by line with arrival times.
type timedLine struct {
	text string
	at   time.Time
}

func readLines(r io.Reader) <-chan timedLine {
	ch := make(chan timedLine, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- timedLine{sc.Text(), time.Now()}
		}
	}()
	return ch
}
