package tools

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/executor/local"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newEnv(t *testing.T) executor.Env {
	t.Helper()
	env, err := local.New(t.TempDir(), nil).Prepare(t.Context(), executor.JobSpec{JobID: 1, Attempt: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = env.Close(context.Background()) })
	return env
}

func runShell(t *testing.T, ctx context.Context, env executor.Env, fields map[string]any, jobEnv map[string]string) (Result, string) {
	t.Helper()
	var out syncBuffer
	res := Builtin()["shell"].Run(ctx, env, Step{Index: 0, Tool: "shell", Fields: fields, Env: jobEnv, Output: &out})
	return res, out.String()
}

func exitCode(r Result) int {
	if r.ExitCode == nil {
		return -100
	}
	return *r.ExitCode
}

func TestShellStatuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		fields     map[string]any
		status     ci.StepStatus
		reason     string
		code       int
		outContain string
	}{
		{name: "ok", fields: map[string]any{"cmd": "echo hello"}, status: ci.StepOK, code: 0, outContain: "hello\n"},
		{name: "failed", fields: map[string]any{"cmd": "echo bad >&2; exit 3"}, status: ci.StepFailed, reason: ReasonRetcode, code: 3, outContain: "bad\n"},
		{name: "script set -ex", fields: map[string]any{"script": "echo one\nfalse\necho never"}, status: ci.StepFailed, reason: ReasonRetcode, code: 1, outContain: "+ echo one\none\n+ false\n"},
		{name: "script ok", fields: map[string]any{"script": "A=1\necho \"a=$A\""}, status: ci.StepOK, code: 0, outContain: "a=1\n"},
		{name: "shell_exe", fields: map[string]any{"cmd": `echo "[$0]"`, "shell_exe": "/bin/bash"}, status: ci.StepOK, code: 0, outContain: "[/bin/bash]\n"},
		{name: "timeout", fields: map[string]any{"cmd": "sleep 100", "timeout": 0.2}, status: ci.StepTimeout, reason: ReasonStepTimeout, code: -100},
		{name: "timeout numeric string", fields: map[string]any{"cmd": "sleep 100", "timeout": "0.2"}, status: ci.StepTimeout, reason: ReasonStepTimeout, code: -100},
		{name: "no cmd", fields: map[string]any{}, status: ci.StepError, reason: ReasonBadParameters, code: -100},
		{name: "cmd and script", fields: map[string]any{"cmd": "a", "script": "b"}, status: ci.StepError, reason: ReasonBadParameters, code: -100},
		{name: "bad timeout", fields: map[string]any{"cmd": "true", "timeout": "soon"}, status: ci.StepError, reason: ReasonBadParameters, code: -100},
		{name: "bad env", fields: map[string]any{"cmd": "true", "env": []any{"A=1"}}, status: ci.StepError, reason: ReasonBadParameters, code: -100},
		{name: "missing cwd", fields: map[string]any{"cmd": "true", "cwd": "nope"}, status: ci.StepError, reason: ReasonExecError, code: -100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t)
			res, out := runShell(t, t.Context(), env, tc.fields, nil)
			assert.Equal(t, tc.status, res.Status, "message: %s; output: %s", res.Message, out)
			assert.Equal(t, tc.reason, res.Reason)
			assert.Equal(t, tc.code, exitCode(res))
			assert.Contains(t, out, tc.outContain)
		})
	}
}

func TestShellScriptFileRemoved(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	res, out := runShell(t, t.Context(), env, map[string]any{"script": "ls -a \"$(dirname \"$0\")\""}, nil)
	require.Equal(t, ci.StepOK, res.Status, out)
	assert.Contains(t, out, ".kk-step-0-", "the script runs from a file in the workspace")
	entries, err := os.ReadDir(env.Workspace())
	require.NoError(t, err)
	assert.Empty(t, entries, "the script file is removed after the step")
}

func TestShellEnvAndCwd(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	require.NoError(t, os.MkdirAll(filepath.Join(env.Workspace(), "a", "b"), 0o755))
	res, out := runShell(t, t.Context(), env, map[string]any{
		"cmd": `echo "$JOB $OVER $NUM $FLT $FLAG $NIL." && pwd`,
		"cwd": "a/b",
		"env": map[string]any{"OVER": "step", "NUM": float64(3), "FLT": 1.5, "FLAG": true, "NIL": nil},
	}, map[string]string{"JOB": "job", "OVER": "job"})
	require.Equal(t, ci.StepOK, res.Status, out)
	assert.Equal(t, "job step 3 1.5 true .\n"+filepath.Join(env.Workspace(), "a", "b")+"\n", out)
}

func TestShellCancelAndJobTimeout(t *testing.T) {
	t.Parallel()
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan Result, 1)
		var out syncBuffer
		go func() {
			done <- Shell{}.Run(ctx, env, Step{Fields: map[string]any{"cmd": "echo started; sleep 100"}, Output: &out})
		}()
		waitFor(t, func() bool { return strings.Contains(out.String(), "started") })
		cancel()
		res := <-done
		assert.Equal(t, ci.StepCancelled, res.Status)
		assert.Equal(t, ReasonCancelled, res.Reason)
	})
	t.Run("job deadline", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t)
		deadline := time.Now().Add(200 * time.Millisecond)
		ctx, cancel := context.WithDeadline(t.Context(), deadline)
		defer cancel()
		res, _ := runShell(t, ctx, env, map[string]any{"cmd": "sleep 100", "timeout": 50}, nil)
		assert.Equal(t, ci.StepTimeout, res.Status)
		assert.Equal(t, ReasonJobTimeout, res.Reason)
	})
}

func TestShellBackground(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	bg := NewBackground()
	var out syncBuffer
	start := time.Now()
	res := Shell{}.Run(t.Context(), env, Step{
		Fields:     map[string]any{"cmd": "echo $$; exec sleep 100", "background": true, "timeout": 0.1},
		Output:     &out,
		Background: bg,
	})
	require.Equal(t, ci.StepOK, res.Status, res.Message)
	assert.Less(t, time.Since(start), 2*time.Second, "a background step returns at once")

	var pid int
	waitFor(t, func() bool {
		p, err := strconv.Atoi(strings.TrimSpace(out.String()))
		pid = p
		return err == nil
	})
	require.True(t, processAlive(pid), "still running: its timeout does not apply")

	require.NoError(t, bg.Stop(t.Context()))
	assert.False(t, processAlive(pid), "killed at job end")
	assert.Contains(t, out.String(), "background command stopped at the end of the job")
	assert.Error(t, bg.Go(t.Context(), func(context.Context) {}), "no new work after Stop")

	res = Shell{}.Run(t.Context(), env, Step{Fields: map[string]any{"cmd": "true", "background": "yes"}, Output: &out})
	assert.Equal(t, ci.StepError, res.Status, "background is a bool")
	res = Shell{}.Run(t.Context(), env, Step{Fields: map[string]any{"cmd": "true", "background": true}, Output: &out})
	assert.Equal(t, ci.StepError, res.Status, "no Background set")
}

func TestShellUserWithoutRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		env := newEnv(t)
		res, out := runShell(t, t.Context(), env, map[string]any{"cmd": "id -un", "user": "nobody", "cwd": "/"}, nil)
		require.Equal(t, ci.StepOK, res.Status, res.Message)
		assert.Equal(t, "nobody\n", out)
		return
	}
	env := newEnv(t)
	res, _ := runShell(t, t.Context(), env, map[string]any{"cmd": "true", "user": "nobody"}, nil)
	assert.Equal(t, ci.StepError, res.Status)
	assert.Contains(t, res.Message, "root")
}

func TestFields(t *testing.T) {
	t.Parallel()
	f := map[string]any{"i": float64(3), "s": "4", "bad": 1.5, "neg": -1.0, "b": "TRUE", "n": nil}
	v, err := Int(f, "i", 1)
	require.NoError(t, err)
	assert.Equal(t, 3, v)
	v, err = Int(f, "s", 1)
	require.NoError(t, err)
	assert.Equal(t, 4, v)
	v, err = Int(f, "missing", 1)
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	v, err = Int(f, "n", 1)
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	_, err = Int(f, "bad", 1)
	assert.Error(t, err)
	_, _, err = Seconds(f, "neg")
	assert.Error(t, err)
	d, ok, err := Seconds(f, "bad")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 1500*time.Millisecond, d)
	b, err := Bool(f, "b", false)
	require.NoError(t, err)
	assert.True(t, b)
	assert.Equal(t, `["a",1]`, Stringify([]any{"a", float64(1)}))
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] != 'Z'
}
