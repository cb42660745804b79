package schema

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testContext() Context {
	return Context{
		IsCI:       true,
		Args:       map[string]string{"count": "10", "race": "yes"},
		Project:    "shop",
		Branch:     "Main",
		BranchName: "main",
		Env:        map[string]string{"REGION": "eu"},
		Stage:      "Build",
		Flow: FlowInfo{ID: 7, Kind: "CI", Seq: 42, KindSeq: 40, Label: "v1.40",
			Data: map[string]any{"targets": []any{"eu", "us"}, "ratio": 0.5, "n": int64(3)}},
		Run: RunInfo{ID: 9, Seq: 5, Label: "run.5"},
		Secrets: map[string]any{
			"token":  "s3cr3t",
			"deploy": map[string]any{"username": "bot", "key": "-----KEY-----"},
		},
	}
}

func TestInterpolate(t *testing.T) {
	t.Parallel()
	vars := testContext().Vars()
	tests := []struct {
		name string
		in   string
		want string
		err  string
	}{
		{name: "hash and brace apart", in: "a # {b} #", want: "a # {b} #"},
		{name: "unchanged without #{", in: "echo ${HOME} #x {y}", want: "echo ${HOME} #x {y}"},
		{name: "args", in: "n=#{args.count}", want: "n=10"},
		{name: "args by index", in: "#{args['race']}", want: "yes"},
		{name: "missing arg is empty", in: "[#{args.nope}]", want: "[]"},
		{name: "env with default", in: "#{env.X or 'y'}-#{env.REGION or 'y'}", want: "y-eu"},
		{name: "flow seq", in: "bld-#{flow.seq.own}/#{flow.seq.shared}", want: "bld-40/42"},
		{name: "run seq and label", in: "#{run.seq.own} #{run.label} #{flow.label}", want: "5 run.5 v1.40"},
		{name: "branch object", in: "#{branch.branch_name}|#{branch.name}|#{branch_name}", want: "main|Main|main"},
		{name: "project and stage", in: "#{project}/#{stage}", want: "shop/Build"},
		{name: "kind and flags", in: "#{flow.kind} #{is_ci} #{is_dev}", want: "CI True False"},
		{name: "secrets", in: "#{secrets.token}:#{secrets.deploy.username}", want: "s3cr3t:bot"},
		{name: "legacy seq names", in: "#{KK_FLOW_SEQ}.#{KK_CI_DEV_FLOW_SEQ}.#{KK_RUN_SEQ}.#{KK_CI_DEV_RUN_SEQ}", want: "42.40.5.5"},
		{name: "legacy flow type and branch", in: "#{KK_FLOW_TYPE} #{ KK_BRANCH }", want: "CI main"},
		{name: "legacy secrets", in: "#{KK_SECRET_SIMPLE_token} #{KK_SECRET_USER_deploy} #{KK_SECRET_KEY_deploy}", want: "s3cr3t bot -----KEY-----"},
		{name: "numbers without trailing .0", in: "#{flow.data.ratio * 4} #{flow.data.ratio} #{flow.data.n + 1}", want: "2 0.5 4"},
		{name: "lists render in starlark notation", in: "#{flow.data.targets}", want: `["eu", "us"]`},
		{name: "list index", in: "#{flow.data.targets[1]}", want: "us"},
		{name: "none is empty", in: "[#{None}]", want: "[]"},
		{name: "python formatting", in: "#{'%03d' % flow.seq.own}", want: "040"},
		{name: "braces inside strings", in: "#{'}' + '{'}!", want: "}{!"},
		{name: "dict literal", in: "#{ {'a': 'b'}['a'] }", want: "b"},
		{name: "several expressions", in: "#{args.count}#{args.race}", want: "10yes"},
		{name: "jinja lowercase literals", in: "#{true} #{none}", want: "True "},
		{name: "unknown name", in: "x #{nope} y", err: "evaluate #{nope}: #{}:1:1: undefined: nope"},
		{name: "unknown attribute of a missing value", in: "#{flow.seq.own.x}", err: "evaluate #{flow.seq.own.x}"},
		{name: "bad expression", in: "#{args.}", err: "evaluate #{args.}"},
		{name: "unterminated", in: "echo #{args.count", err: `unterminated #{ in "echo #{args.count"`},
		{name: "empty", in: "#{ }", err: "empty #{} expression"},
		{name: "runaway expression", in: "#{[x for x in range(1000000)]}", err: "execution step limit (100000) exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Interpolate(tt.in, vars)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestInterpolateValue(t *testing.T) {
	t.Parallel()
	vars := testContext().Vars()
	type named string
	tests := []struct {
		name string
		in   any
		want any
		err  string
	}{
		{name: "nil", in: nil, want: nil},
		{name: "scalar", in: int64(3), want: int64(3)},
		{name: "string", in: "#{args.count}", want: "10"},
		{
			name: "step",
			in: Step{"tool": "shell", "cmd": "make N=#{args.count}", "timeout": int64(60),
				"env": map[string]any{"TOKEN": "#{secrets.token}"}, "list": []any{"#{KK_FLOW_SEQ}", true, nil}},
			want: Step{"tool": "shell", "cmd": "make N=10", "timeout": int64(60),
				"env": map[string]any{"TOKEN": "s3cr3t"}, "list": []any{"42", true, nil}},
		},
		{name: "typed slices", in: []string{"#{args.race}", "x"}, want: []string{"yes", "x"}},
		{name: "typed maps", in: map[string]string{"a": "#{env.REGION}"}, want: map[string]string{"a": "eu"}},
		{name: "named strings", in: named("#{project}"), want: named("shop")},
		{name: "slices of steps", in: []Step{{"cmd": "#{stage}"}}, want: []Step{{"cmd": "Build"}}},
		{name: "error names the key", in: map[string]any{"cmd": "#{bad}"}, err: "cmd: evaluate #{bad}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := InterpolateValue(tt.in, vars)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestInterpolateValueCopies(t *testing.T) {
	t.Parallel()
	in := map[string]any{"a": []any{"#{args.count}"}}
	out, err := InterpolateValue(in, testContext().Vars())
	require.NoError(t, err)
	assert.Equal(t, "#{args.count}", in["a"].([]any)[0], "input is not modified")
	assert.Equal(t, "10", out.(map[string]any)["a"].([]any)[0])
}
