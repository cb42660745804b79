package schema

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProblemPositions checks that validation problems point at the exact
// key in the source, however the stage dict was built.
func TestProblemPositions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		code string
		want []want // positions and keys; messages are checked elsewhere
	}{
		{
			name: "steps built by append in a loop (example B style)",
			code: `def stage(ctx):
    jobs = []
    for t in ["a", "b"]:
        jobs.append({
            "name": "deploy %s" % t,
            "steps": [
                {"tool": "shell", "cmd": "./deploy.sh %s" % t, "usr": "root"},
            ],
            "environments": [{"agents_group": "all", "system": "any"}],
        })
    return {"parent": "root", "jobs": jobs}
`,
			want: []want{{line: 7, col: 64, key: "jobs[0].steps[0].usr"}, {line: 7, col: 64, key: "jobs[1].steps[0].usr"}},
		},
		{
			name: "steps in a variable",
			code: `def stage(ctx):
    steps = [
        {"tool": "git", "checkout": "https://x/y.git"},
        {"tool": "shell", "cmd": "make",
         "timeot": 10},
    ]
    return {"jobs": [{"name": "b", "steps": steps,
                      "environments": [{"agents_group": "all", "system": "any"}]}]}
`,
			want: []want{{line: 5, col: 10, key: "jobs[0].steps[1].timeot"}},
		},
		{
			name: "same bad key in two steps picks the right index",
			code: `def stage(ctx):
    return {"jobs": [{"name": "b", "environments": [{"agents_group": "all", "system": "any"}],
        "steps": [
            {"tool": "shell", "cmd": "a"},
            {"tool": "shell", "cmd": "b", "cwdd": "x"},
            {"tool": "shell", "cmd": "c", "cwdd": "y"},
        ]}]}
`,
			want: []want{{line: 5, col: 43, key: "jobs[0].steps[1].cwdd"}, {line: 6, col: 43, key: "jobs[0].steps[2].cwdd"}},
		},
		{
			name: "key set by index assignment",
			code: `def stage(ctx):
    step = {"tool": "shell", "cmd": "x"}
    step["shel_exe"] = "/bin/zsh"
    return {"jobs": [{"name": "b", "steps": [step],
                      "environments": [{"agents_group": "all", "system": "any"}]}]}
`,
			want: []want{{line: 3, col: 10, key: "jobs[0].steps[0].shel_exe"}},
		},
		{
			name: "dict() keyword arguments",
			code: `def stage(ctx):
    step = dict(tool="shell", cmd="x", bg=True)
    return {"jobs": [{"name": "b", "steps": [step],
                      "environments": [{"agents_group": "all", "system": "any"}]}]}
`,
			want: []want{{line: 2, col: 40, key: "jobs[0].steps[0].bg"}},
		},
		{
			name: "concatenated step lists",
			code: `COMMON = [{"tool": "git", "checkout": "https://x/y.git"}]

def stage(ctx):
    return {"jobs": [{"name": "b",
                      "steps": COMMON + [{"tool": "shell", "cmd": "x", "user": 0}],
                      "environments": [{"agents_group": "all", "system": "any"}]}]}
`,
			want: []want{{line: 5, col: 72, key: "jobs[0].steps[1].user"}},
		},
		{
			name: "jobs from a comprehension",
			code: `def stage(ctx):
    return {"jobs": [{"name": n, "steps": [], "environment": []} for n in ["a"]]}
`,
			want: []want{{line: 2, col: 13, key: "jobs[0]"}, {line: 2, col: 47, key: "jobs[0].environment"}},
		},
		{
			name: "wrong-typed environment field",
			code: `def stage(ctx):
    return {
        "jobs": [{
            "name": "b",
            "steps": [],
            "environments": [
                {"agents_group": "all", "system": "any"},
                {"agents_group": 7, "system": "any"},
            ],
        }],
    }
`,
			want: []want{{line: 8, col: 18, key: "jobs[0].environments[1].agents_group"}},
		},
		{
			name: "missing key of a literal step points at the step",
			code: `def stage(ctx):
    return {"jobs": [{"name": "b", "environments": [{"agents_group": "all", "system": "any"}],
                      "steps": [{"tool": "git"}]}]}
`,
			want: []want{{line: 3, col: 33, key: "jobs[0].steps[0]"}},
		},
		{
			name: "computed key falls back to the return statement",
			code: `def stage(ctx):
    d = {}
    d["par" + "ent"] = "root"
    d["x" * 2] = 1
    return d
`,
			want: []want{{line: 5, col: 5, key: "xx"}},
		},
		{
			name: "conditional values",
			code: `def stage(ctx):
    return {"triggers": {"cron": "0 2 * * *"} if ctx.is_ci else {"intervl": "1h"}}
`,
			want: []want{{line: 2, col: 66, key: "triggers.intervl"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Eval(context.Background(), "stage.py", []byte(tt.code), Context{}, Limits{})
			var ps Problems
			require.True(t, errors.As(err, &ps), "want Problems, got %v", err)
			got := make([]want, len(ps))
			for i, p := range ps {
				got[i] = want{line: p.Line, col: p.Col, key: p.Key}
			}
			assert.ElementsMatch(t, tt.want, got, ps.Error())
		})
	}
}

func TestLocate(t *testing.T) {
	t.Parallel()
	code := []byte(`def stage(ctx):
    return {
        "parent": "Build",
        "jobs": [{
            "name": "a",
            "steps": [],
            "environments": [
                {"agents_group": "all", "system": "any"},
                {"agents_group": "gpu", "system": "any"},
            ],
        }],
        "configs": [{"a b": "c"}],
    }
`)
	tests := []struct {
		key       string
		line, col int
	}{
		{key: "parent", line: 3, col: 9},
		{key: "jobs[0].environments[1].agents_group", line: 9, col: 18},
		{key: "jobs[0].environments[1]", line: 9, col: 17},
		{key: `configs[0]["a b"]`, line: 12, col: 22},
		{key: "nothing.here", line: 2, col: 5},
		{key: "jobs[x", line: 4, col: 9},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			line, col := Locate(code, tt.key)
			assert.Equal(t, [2]int{tt.line, tt.col}, [2]int{line, col})
		})
	}
	line, col := Locate([]byte("def ("), "parent")
	assert.Zero(t, line+col)
}

func TestPathRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []path{
		path(nil).key("jobs").index(0).key("steps").index(12).key("ssh-key"),
		path(nil).key("configs").index(0).key(`we"ird]key`).key("x"),
		path(nil).key("a b").index(3),
	} {
		assert.Equal(t, p, parsePath(p.String()), p.String())
	}
}
