package schema

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// fuzzLimits keep each fuzzed evaluation small.
var fuzzLimits = Limits{MaxSteps: 20_000, Timeout: 500, MaxMemory: 64 << 20}

// FuzzEval feeds arbitrary stage code to Eval: it must never panic (Eval
// turns panics into "internal error" problems, which count as failures here),
// must finish within its limits, and must return either a stage that
// serialises or a non-empty list of problems.
func FuzzEval(f *testing.F) {
	for _, name := range []string{"testdata/example_a.py", "testdata/example_b.py"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, seed := range []string{
		wrap(`{"tool": "shell", "cmd": "echo %s %03d" % (ctx.branch_name, 5)}`),
		wrap(`{"tool": "git", "checkout": "x", "cmdd": 1}, {"tool": "cache", "action": "save"}`),
		"def stage(ctx):\n    while True:\n        pass\n",
		"def stage(ctx):\n    return {\"triggers\": {\"cron\": \"*/5 1-3 * jan mon\", \"interval\": \"1h\"}}\n",
		"def f(n):\n    return f(n)\ndef stage(ctx):\n    return f(1)\n",
		"load('x', 'y')\n",
		"def stage(ctx):\n    l = []\n    l.append(l)\n    return {\"configs\": l}\n",
		"def stage(ctx):\n    return {\"parent\": \"%(a)s %-5d %.2f\" % {\"a\": ctx.args.x}}\n",
		"def stage(ctx):\n    s = \"x\" * 1000\n    return {\"jobs\": [{\"name\": s * 1000}]}\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, code string) {
		start := time.Now()
		st, err := Eval(context.Background(), "fuzz.py", []byte(code), Context{IsCI: true}, fuzzLimits)
		if elapsed := time.Since(start); elapsed > 10*time.Second {
			t.Fatalf("evaluation took %s", elapsed)
		}
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not a non-empty Problems: %#v", err)
			}
			for _, p := range ps {
				if strings.Contains(p.Message, "internal error") {
					t.Fatalf("panic: %s", p.Message)
				}
				if p.File != "fuzz.py" {
					t.Fatalf("problem without file: %#v", p)
				}
			}
			return
		}
		if st == nil {
			t.Fatal("nil stage without error")
		}
		if _, err := json.Marshal(st); err != nil {
			t.Fatalf("stage does not serialise: %v", err)
		}
		for _, inst := range st.Instances() {
			if _, err := InterpolateValue(inst.Steps, Context{}.Vars()); err != nil && strings.Contains(err.Error(), "internal") {
				t.Fatal(err)
			}
		}
	})
}

// FuzzInterpolate: no panic, bounded time, and strings without "#{" are
// returned unchanged.
func FuzzInterpolate(f *testing.F) {
	for _, seed := range []string{
		"plain", "#{args.count}", "#{", "#{}", "#{'}'}", "a #{flow.seq.own} b #{KK_FLOW_SEQ}",
		"#{env.X or 'y'}", "#{[1] * 100}", `#{"%05.1f" % 2.5}`, "#{lambda: 1}", "#{ {'a': {'b': 1}} }",
	} {
		f.Add(seed)
	}
	vars := testContext().Vars()
	f.Fuzz(func(t *testing.T, s string) {
		start := time.Now()
		out, err := Interpolate(s, vars)
		if elapsed := time.Since(start); elapsed > 10*time.Second {
			t.Fatalf("interpolation took %s", elapsed)
		}
		if !strings.Contains(s, "#{") && (err != nil || out != s) {
			t.Fatalf("%q changed to %q (%v)", s, out, err)
		}
	})
}

// FuzzEvalWhen: no panic on arbitrary conditions.
func FuzzEvalWhen(f *testing.F) {
	for _, seed := range []string{"", "always", "was_no_error and is_ci", "job.steps[step.index-1].result.duration > 3", "not"} {
		f.Add(seed)
	}
	w := WhenContext{IsCI: true, PrevOK: true, Index: 1, Steps: []WhenStep{{Status: "done", Duration: 4}}}
	f.Fuzz(func(t *testing.T, expr string) {
		_, evalErr := EvalWhen(expr, w)
		if ValidateWhen(expr) == nil && evalErr != nil && strings.Contains(evalErr.Error(), "undefined") {
			t.Fatalf("validated %q but evaluation says %v", expr, evalErr)
		}
	})
}

// FuzzTriggerSpecs: the cron, interval and date parsers never panic, and a
// parsed cron rule's Next terminates.
func FuzzTriggerSpecs(f *testing.F) {
	for _, seed := range []string{"*/5 * * * *", "0 0 29 2 mon", "@daily", "1h30m", "1:30", "2012-01-19 17:21:00"} {
		f.Add(seed)
	}
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if c, err := ParseCron(s); err == nil {
			if next := c.Next(from); !next.IsZero() && !next.After(from) {
				t.Fatalf("%q: next %v is not after %v", s, next, from)
			}
		}
		if d, err := ParseInterval(s); err == nil && (d <= 0 || d > maxInterval) {
			t.Fatalf("%q: interval %v out of range", s, d)
		}
		_, _ = ParseDate(s)
	})
}
