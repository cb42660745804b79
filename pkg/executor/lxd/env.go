package lxd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/websocket"

	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/executor/inside"
)

// Env is a job instance. It implements executor.Env and executor.SystemFiles.
type Env struct {
	exec      *Executor
	name      string
	workspace string
	log       *slog.Logger

	runs executor.Runs
}

var (
	_ executor.Env         = (*Env)(nil)
	_ executor.SystemFiles = (*Env)(nil)
)

// Workspace returns the workspace path, the same on the host and inside.
func (v *Env) Workspace() string { return v.workspace }

// InstanceName returns the job instance's name.
func (v *Env) InstanceName() string { return v.name }

// HasFile tells whether the instance has a file (not a directory) at p.
func (v *Env) HasFile(ctx context.Context, p string) bool {
	typ, err := v.exec.api.getFile(ctx, v.name, p, nil)
	return err == nil && typ != "directory"
}

// Close aborts running commands, waits for them (bounded by ctx), then
// force-stops and deletes the instance and removes the workspace. It is
// idempotent.
func (v *Env) Close(ctx context.Context) error {
	var errs []error
	if err := v.runs.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	if err := v.exec.deleteInstance(rctx, v.name); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(v.workspace); err != nil {
		errs = append(errs, fmt.Errorf("remove workspace: %w", err))
	}
	return errors.Join(errs...)
}

// Run runs one command by exec; see the package comment.
func (v *Env) Run(ctx context.Context, cmd executor.Command) (executor.Result, error) {
	res := executor.Result{ExitCode: -1}
	end, cancelled, err := v.runs.Start(ctx, cmd)
	if err != nil || cancelled {
		res.Cancelled = cancelled
		return res, err
	}
	defer end()
	out := cmd.Writer()
	dir := cmd.WorkDir(v.workspace)
	// API calls go on after a cancel: they stop the command.
	actx := context.WithoutCancel(ctx)
	uid, gid, err := v.lookupUser(actx, cmd.User)
	if err != nil {
		return res, fmt.Errorf("run %s: %w", cmd.Argv[0], err)
	}
	env := map[string]string{}
	for _, kv := range cmd.Env {
		if k, val, ok := strings.Cut(kv, "="); ok {
			env[k] = val
		}
	}
	pidfile := path.Join(runDir, randomHex(8)+".pid")
	argv := append([]string{helperPath, inside.ExecCmd, pidfile}, cmd.Argv...)
	start := time.Now()
	op, err := v.exec.api.async(actx, http.MethodPost, "/1.0/instances/"+url.PathEscape(v.name)+"/exec", map[string]any{
		"command":            argv,
		"environment":        env,
		"cwd":                dir,
		"user":               uid,
		"group":              gid,
		"wait-for-websocket": true,
		"interactive":        false,
	})
	if err != nil {
		return res, fmt.Errorf("run %s: exec: %w", cmd.Argv[0], err)
	}
	var fds map[string]string
	if raw, ok := op.Metadata["fds"]; ok {
		_ = json.Unmarshal(raw, &fds)
	}
	conns := map[string]*websocket.Conn{}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for _, fd := range []string{"control", "0", "1", "2"} {
		secret, ok := fds[fd]
		if !ok {
			return res, fmt.Errorf("run %s: exec operation has no websocket %q", cmd.Argv[0], fd)
		}
		c, err := v.exec.api.websocket(actx, op.ID, secret)
		if err != nil {
			return res, fmt.Errorf("run %s: %w", cmd.Argv[0], err)
		}
		conns[fd] = c
	}
	// No stdin: end it at once.
	_ = conns["0"].Close()
	delete(conns, "0")
	copied := make(chan struct{})
	var outMu sync.Mutex
	var readers sync.WaitGroup
	for _, fd := range []string{"1", "2"} {
		readers.Add(1)
		go func(c *websocket.Conn) {
			defer readers.Done()
			for {
				var msg []byte
				if err := websocket.Message.Receive(c, &msg); err != nil {
					return
				}
				if len(msg) == 0 {
					return // LXD ends a stream with an empty message
				}
				outMu.Lock()
				_, _ = out.Write(msg)
				outMu.Unlock()
			}
		}(conns[fd])
	}
	go func() {
		readers.Wait()
		close(copied)
	}()

	var timeout <-chan time.Time
	if cmd.Timeout > 0 {
		t := time.NewTimer(cmd.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	grace := cmd.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	select {
	case <-copied:
	case <-ctx.Done():
		res.Cancelled = true
	case <-v.runs.Closing():
		res.Cancelled = true
	case <-timeout:
		res.TimedOut = true
	}
	if res.Cancelled || res.TimedOut {
		v.log.Debug("stopping command", "timed_out", res.TimedOut, "grace", grace)
		if !inside.Stop(func(sig string) { v.signal(actx, sig, pidfile) }, grace, copied) {
			v.log.Warn("command did not end after SIGKILL; no longer reading its output")
		}
	}
	res.Duration = time.Since(start)
	wctx, cancel := context.WithTimeout(actx, inside.StopWait+30*time.Second)
	defer cancel()
	done, err := v.exec.api.wait(wctx, op.ID)
	if err != nil && done == nil {
		return res, fmt.Errorf("run %s: wait for exec: %w", cmd.Argv[0], err)
	}
	if !res.Cancelled && !res.TimedOut {
		code := -1
		if raw, ok := done.Metadata["return"]; ok {
			_ = json.Unmarshal(raw, &code)
		}
		res.ExitCode = code
	}
	return res, nil
}

// signal runs `__kk-signal SIG PIDFILE` as root in the instance.
func (v *Env) signal(ctx context.Context, sig, pidfile string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := v.exec.api.run(ctx, http.MethodPost, "/1.0/instances/"+url.PathEscape(v.name)+"/exec", map[string]any{
		"command":            []string{helperPath, inside.SignalCmd, sig, pidfile},
		"user":               0,
		"group":              0,
		"wait-for-websocket": false,
		"interactive":        false,
	})
	if err != nil {
		v.log.Warn("signal command", "signal", sig, "err", err)
	}
}

// lookupUser turns Command.User ("", "uid", "uid:gid", "name" or
// "name:group") into ids, reading the instance's /etc/passwd and /etc/group
// for names: LXD's exec takes numeric ids only.
func (v *Env) lookupUser(ctx context.Context, user string) (uint32, uint32, error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, primary, err := v.lookupID(ctx, "/etc/passwd", u)
	if err != nil {
		return 0, 0, err
	}
	gid := primary
	if hasGroup {
		if gid, _, err = v.lookupID(ctx, "/etc/group", g); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

// lookupID returns the id (and, for passwd, the primary group) of name in a
// passwd-format file; a number is taken as it is.
func (v *Env) lookupID(ctx context.Context, file, name string) (id, group uint32, err error) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(n), uint32(n), nil
	}
	var buf bytes.Buffer
	if _, err := v.exec.api.getFile(ctx, v.name, file, &buf); err != nil {
		return 0, 0, fmt.Errorf("look up %q: read %s: %w", name, file, err)
	}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 || f[0] != name {
			continue
		}
		n, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			break
		}
		id, group = uint32(n), uint32(n)
		if len(f) > 3 {
			if g, err := strconv.ParseUint(f[3], 10, 32); err == nil && file == "/etc/passwd" {
				group = uint32(g)
			}
		}
		return id, group, nil
	}
	return 0, 0, fmt.Errorf("no %q in the instance's %s: use a user of the image or a numeric uid", name, file)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
