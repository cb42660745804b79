package schema

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSandboxLimits runs hostile stage code: every case must fail with a
// Problem, quickly.
func TestSandboxLimits(t *testing.T) {
	t.Parallel()
	runLimitCases(t, true, []limitCase{
		{
			name: "infinite loop hits the step limit",
			code: "def stage(ctx):\n    while True:\n        pass\n",
			lim:  Limits{MaxSteps: 100_000, Timeout: 60_000},
			msg:  "evaluation stopped: execution step limit (100000) exceeded",
		},
		{
			name: "infinite loop with default limits",
			code: "def stage(ctx):\n    i = 0\n    while True:\n        i += 1\n",
			lim:  Limits{Timeout: 60_000},
			msg:  "evaluation stopped: execution step limit (10000000) exceeded",
		},
		{
			name: "top-level infinite loop",
			code: "x = 0\nwhile True:\n    x += 1\ndef stage(ctx):\n    return {}\n",
			lim:  Limits{MaxSteps: 50_000, Timeout: 60_000},
			msg:  "execution step limit (50000) exceeded",
		},
		{
			name: "wall-clock timeout",
			code: "def stage(ctx):\n    while True:\n        pass\n",
			lim:  Limits{MaxSteps: 1 << 62, Timeout: 50},
			msg:  "evaluation stopped: timeout of 50ms exceeded",
		},
		{
			name: "unbounded recursion",
			code: "def f(n):\n    return f(n + 1)\n\ndef stage(ctx):\n    return f(0)\n",
			line: 2,
			msg:  "evaluation stopped: call depth limit (5000) exceeded (unbounded recursion?)",
		},
		{
			name: "list repetition",
			code: "def stage(ctx):\n    return {\"configs\": [0] * 1000000000}\n",
			line: 2, msg: "repetition makes 1000000000 elements, over the sandbox limit",
		},
		{
			name: "string repetition",
			code: "def stage(ctx):\n    s = \"ab\"\n    s *= 100000000\n",
			line: 3, msg: "repetition makes 200000000 bytes, over the sandbox limit",
		},
		{
			name: "quadratic replace",
			code: "def stage(ctx):\n    s = \"x\" * 1000000\n    return {\"parent\": s.replace(\"x\", s)}\n",
			line: 3, msg: "replace: result of 1000000000000 bytes is over the sandbox limit",
		},
		{
			name: "amplifying join",
			code: "def stage(ctx):\n    return {\"parent\": (\"x\" * 10000000).join([\"a\"] * 100)}\n",
			line: 2, msg: "join: result of 990000100 bytes is over the sandbox limit",
		},
		{
			name: "amplifying format",
			code: "def stage(ctx):\n    return {\"parent\": \"{}{}{}{}{}{}{}{}\".format(\"x\" * 10000000)}\n",
			line: 2, msg: "format: result of about 80000032 bytes is over the sandbox limit",
		},
		{
			name: "split into too many parts",
			code: "def stage(ctx):\n    return {\"configs\": (\" a\" * 5000000).split()}\n",
			line: 2, msg: "split: 5000000 parts exceed the sandbox limit",
		},
		{
			name: "str of an exponentially shared list",
			code: "def stage(ctx):\n    x = [\"abc\"]\n    for i in range(40):\n        x = [x, x]\n    return {\"parent\": str(x)}\n",
			line: 5, msg: "str: value too large to convert to a string",
		},
		{
			name: "percent of an exponentially shared list",
			code: "def stage(ctx):\n    x = [\"abc\"]\n    for i in range(40):\n        x = [x, x]\n    return {\"parent\": \"%r\" % (x,)}\n",
			line: 5, msg: "%r: value too large to convert to a string",
		},
		{
			name: "huge integer product",
			code: "def stage(ctx):\n    x = 3\n    for i in range(40):\n        x = x * x\n",
			line: 4, msg: "product of integers exceeds the sandbox limit of 1048576 bits",
		},
		{
			name: "huge range",
			code: "def stage(ctx):\n    return {\"configs\": list(range(1 << 30))}\n",
			line: 2,
			msg:  "range: 1073741824 elements exceed the sandbox limit",
		},
	})
}

// TestSandboxMemory runs the cases that allocate a lot. It does not call
// t.Parallel: the memory watchdog measures the whole process heap, so these
// must not share the process with the other tests' evaluations.
func TestSandboxMemory(t *testing.T) {
	runLimitCases(t, false, []limitCase{
		{
			name: "huge materialisation of a string",
			code: "def stage(ctx):\n    s = \"x\" * 50000000\n    return {\"configs\": sorted(s.elems())}\n",
			line: 3,
			msg:  "sorted: 50000000 elements exceed the sandbox limit",
		},
		{
			name: "memory bomb",
			code: "def stage(ctx):\n    s = \"x\" * (1 << 20)\n    keep = []\n    for i in range(100000):\n        keep.append(s + str(i))\n    return {}\n",
			lim:  Limits{MaxMemory: 32 << 20, Timeout: 60_000},
			msg:  "evaluation stopped: memory limit (32 MiB) exceeded",
		},
		{
			name: "string doubling",
			code: "def stage(ctx):\n    s = \"x\"\n    for i in range(40):\n        s = s + s\n    return {\"parent\": s}\n",
			lim:  Limits{MaxMemory: 64 << 20, Timeout: 60_000},
			msg:  "evaluation stopped: memory limit (64 MiB) exceeded",
		},
		{
			name: "result larger than the limit",
			code: "def stage(ctx):\n    s = \"x\" * (1 << 20)\n    return {\"configs\": [{\"k\": s} for i in range(20)]}\n",
			msg:  "stage result is larger than 10 MiB",
		},
		{
			name: "exponentially shared result",
			code: "def stage(ctx):\n    x = [\"abc\"]\n    for i in range(40):\n        x = [x, x]\n    return {\"configs\": x}\n",
			msg:  "stage result is larger than 10 MiB",
		},
		{
			name: "exponentially shared but shallow result",
			code: "def stage(ctx):\n    a = [\"abcdefgh\"] * 1000\n    b = [a] * 1000\n    c = [b] * 1000\n    return {\"configs\": c}\n",
			msg:  "stage result is larger than 10 MiB",
		},
	})
}

// limitCase is hostile stage code and the problem it must produce.
type limitCase struct {
	name string
	code string
	lim  Limits
	line int // 0: not checked (loops have no exact position)
	msg  string
}

func runLimitCases(t *testing.T, parallel bool, tests []limitCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			start := time.Now()
			_, err := Eval(context.Background(), "stage.py", []byte(tt.code), Context{}, tt.lim)
			var ps Problems
			require.True(t, errors.As(err, &ps), "want Problems, got %v", err)
			require.NotEmpty(t, ps)
			assert.Contains(t, ps[0].Message, tt.msg)
			assert.Equal(t, "stage.py", ps[0].File)
			if tt.line != 0 {
				assert.Equal(t, tt.line, ps[0].Line, ps.Error())
			}
			assert.Less(t, time.Since(start), 30*time.Second)
		})
	}
}

func TestEvalCancelledContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cancel func() (context.Context, context.CancelFunc)
		msg    string
	}{
		{
			name: "already cancelled",
			cancel: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			msg: "evaluation cancelled: context canceled",
		},
		{
			name: "deadline during evaluation",
			cancel: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 30*time.Millisecond)
			},
			msg: "evaluation cancelled: context deadline exceeded",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := tt.cancel()
			defer cancel()
			code := "def stage(ctx):\n    while True:\n        pass\n"
			_, err := Eval(ctx, "stage.py", []byte(code), Context{}, Limits{MaxSteps: 1 << 62, Timeout: 60_000})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestEvalRejectsHugeSource(t *testing.T) {
	t.Parallel()
	code := "def stage(ctx):\n    return {}\n" + strings.Repeat("#", MaxCodeBytes)
	_, err := Eval(context.Background(), "big.py", []byte(code), Context{}, Limits{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "big.py: stage code is larger than 1024 KiB")
}

func TestSandboxHasNoIO(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		expr string
	}{
		{name: "open", expr: `open("/etc/passwd")`},
		{name: "import", expr: `__import__("os")`},
		{name: "exec", expr: `exec("1")`},
		{name: "eval", expr: `eval("1")`},
		{name: "getattr escape", expr: `getattr(ctx, "__class__")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code := "def stage(ctx):\n    return {\"parent\": " + tt.expr + "}\n"
			_, err := Eval(context.Background(), "stage.py", []byte(code), Context{}, Limits{})
			require.Error(t, err)
		})
	}
}
