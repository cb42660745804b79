package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/client"
)

const (
	adminPassword   = "kkbench-admin-password"
	registrationKey = "kkbench-registration-key-0123456789"
)

// process is a binary started by the benchmark, in its own process group.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string // file with its output
	done chan struct{}
}

// startProcess starts bin with args; its output goes to logPath.
func startProcess(bin, logPath string, env []string, args ...string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", logPath, err)
	}
	p := &process{name: filepath.Base(bin), cmd: exec.Command(bin, args...), log: logPath, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM to the process group, then SIGKILL after 10 s.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// waitLog polls the process's log for re until timeout and returns the first
// submatch.
func (p *process) waitLog(ctx context.Context, re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.log)
		if m := re.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
		select {
		case <-p.done:
			return "", fmt.Errorf("%s exited: %s", p.name, tail(b))
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling with a deadline
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: no %q in its output within %s: %s", p.name, re, timeout, tail(b))
		}
	}
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

var serveRE = regexp.MustCompile(`kkd is serving on (http://\S+)`)

// daemon is a running kkd with an admin client.
type daemon struct {
	proc  *process
	url   string
	admin *client.Client
}

// startDaemon starts kkd on a fresh data dir under dir with db ("" for
// SQLite), and logs in as admin.
func startDaemon(ctx context.Context, binDir, dir, db string) (*daemon, error) {
	dataDir := filepath.Join(dir, "data")
	args := []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--local-agent=false", "--demo=false", "--agent-registration-key", registrationKey}
	if db != "" {
		args = append(args, "--db", db)
	}
	p, err := startProcess(filepath.Join(binDir, "kkd"), filepath.Join(dir, "kkd.log"),
		[]string{"KKD_ADMIN_PASSWORD=" + adminPassword}, args...)
	if err != nil {
		return nil, err
	}
	url, err := p.waitLog(ctx, serveRE, time.Minute)
	if err != nil {
		p.stop()
		return nil, err
	}
	anon, err := client.New(url, "")
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("client: %w", err)
	}
	login, err := anon.Login(ctx, "admin", adminPassword)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("log in as admin: %w", err)
	}
	admin, err := client.New(url, login.Token)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("client: %w", err)
	}
	return &daemon{proc: p, url: url, admin: admin}, nil
}

// benchStage has N trivial jobs (argument n, default 1); each job runs one
// shell step. Simulated agents never run it; kkagent would run `true`.
const benchStage = `def stage(ctx):
    n = int(ctx.args.n or "1")
    return {
        "parent": "root",
        "triggers": {"parent": True},
        "parameters": [{"name": "n", "type": "string", "default": "1", "description": "number of jobs"}],
        "jobs": [{
            "name": "job-%d" % i,
            "timeout": 600,
            "steps": [{"tool": "shell", "cmd": "true"}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        } for i in range(n)],
    }
`

// setupBranch creates project bench, branch main and the stage; it returns
// the branch id.
func (d *daemon) setupBranch(ctx context.Context) (int64, error) {
	if _, err := d.admin.CreateProject(ctx, api.CreateProject{Name: "bench"}); err != nil {
		return 0, fmt.Errorf("create project: %w", err)
	}
	br, err := d.admin.CreateBranch(ctx, "bench", api.CreateBranch{Name: "main"})
	if err != nil {
		return 0, fmt.Errorf("create branch: %w", err)
	}
	if _, err := d.admin.PutStage(ctx, br.ID, "jobs", api.PutStage{Code: benchStage}); err != nil {
		return 0, fmt.Errorf("put stage: %w", err)
	}
	return br.ID, nil
}

// createFlow starts a flow with n jobs and returns the job ids and when each
// was created (server clock).
func (d *daemon) createFlow(ctx context.Context, branchID int64, n int) ([]api.JobDetail, error) {
	f, err := d.admin.CreateFlow(ctx, branchID, api.CreateFlow{Args: map[string]string{"n": strconv.Itoa(n)}})
	if err != nil {
		return nil, fmt.Errorf("create flow: %w", err)
	}
	var jobs []api.JobDetail
	for _, r := range f.Runs {
		jobs = append(jobs, r.Jobs...)
	}
	if len(jobs) != n {
		return nil, fmt.Errorf("flow %d has %d jobs, want %d", f.ID, len(jobs), n)
	}
	return jobs, nil
}

// procStat reads a process's resident set (VmRSS, bytes) and CPU time
// (utime+stime) from /proc.
type procStat struct {
	rss int64
	cpu time.Duration
}

// readPSS reads Pss (bytes) from /proc/PID/smaps_rollup.
func readPSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, fmt.Errorf("read smaps_rollup: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse Pss %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no Pss in smaps_rollup")
}

func readProcStat(pid int) (procStat, error) {
	var st procStat
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, fmt.Errorf("read process status: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return st, fmt.Errorf("parse VmRSS %q: %w", v, err)
			}
			st.rss = kb << 10
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, fmt.Errorf("read process stat: %w", err)
	}
	// Fields after the command (which may contain spaces) in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return st, errors.New("unexpected /proc stat format")
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return st, errors.New("unexpected /proc stat format")
	}
	// utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	stt, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return st, fmt.Errorf("parse cpu times: %w", err)
	}
	const clkTck = 100 // USER_HZ on Linux
	st.cpu = time.Duration(ut+stt) * time.Second / clkTck
	return st, nil
}

// childPIDs lists the direct children of pid.
func childPIDs(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// apiAgent is an agent as the API lists it.
type apiAgent = api.Agent
