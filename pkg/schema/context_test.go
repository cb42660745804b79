package schema

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVars(t *testing.T) {
	t.Parallel()
	v := testContext().Vars()
	for _, name := range []string{"args", "env", "project", "branch", "branch_name", "stage", "flow", "run",
		"is_ci", "is_dev", "secrets", "KK_FLOW_SEQ", "KK_CI_DEV_FLOW_SEQ", "KK_RUN_SEQ", "KK_CI_DEV_RUN_SEQ",
		"KK_FLOW_TYPE", "KK_BRANCH", "KK_SECRET_SIMPLE_token", "KK_SECRET_USER_deploy", "KK_SECRET_KEY_deploy"} {
		assert.Contains(t, v, name)
	}
	assert.Equal(t, map[string]any{"name": "Main", "branch_name": "main", "data": map[string]any{}, "data_ci": map[string]any{}, "data_dev": map[string]any{}}, v["branch"])
	flow := v["flow"].(map[string]any)
	assert.Equal(t, map[string]any{"shared": int64(42), "own": int64(40)}, flow["seq"])
	assert.Equal(t, "CI", flow["kind"])
	assert.Equal(t, "DEV", Context{}.Vars()["KK_FLOW_TYPE"], "kind derives from IsCI")
	assert.Equal(t, "Main", Context{Branch: "Main"}.Vars()["KK_BRANCH"], "KK_BRANCH falls back to the display name")
	assert.NotContains(t, v, "KK_SECRET_SIMPLE_deploy")
}

// TestStageContext checks what stage code can do with ctx.
func TestStageContext(t *testing.T) {
	t.Parallel()
	c := testContext()
	tests := []struct {
		name string
		expr string
		want string
		err  string
	}{
		{name: "attribute", expr: `ctx.args.count`, want: "10"},
		{name: "missing arg is None", expr: `str(ctx.args.nope)`, want: "None"},
		{name: "missing arg indexed is None", expr: `str(ctx.args["nope"])`, want: "None"},
		{name: "missing data with default", expr: `",".join(ctx.flow.data.nope or ["staging"])`, want: "staging"},
		{name: "missing scope data is None", expr: `str([ctx.branch.data.x, ctx.branch.data_ci.y, ctx.branch.data_dev.z, ctx.project_data.w])`, want: "[None, None, None, None]"},
		{name: "data list", expr: `",".join(ctx.flow.data.targets)`, want: "eu,us"},
		{name: "membership", expr: `str(["count" in ctx.args, "nope" in ctx.args])`, want: "[True, False]"},
		{name: "get with default", expr: `ctx.args.get("nope", "d") + ctx.args.get("race")`, want: "dyes"},
		{name: "keys", expr: `",".join(ctx.args.keys())`, want: "count,race"},
		{name: "items", expr: `str(ctx.env.items())`, want: `[("REGION", "eu")]`},
		{name: "values", expr: `str(ctx.env.values())`, want: `["eu"]`},
		{name: "iteration and len", expr: `"%d:%s" % (len(ctx.args), [k for k in ctx.args])`, want: `2:["count", "race"]`},
		{name: "dict() copy", expr: `str(dict(ctx.env))`, want: `{"REGION": "eu"}`},
		{name: "types", expr: `type(ctx) + " " + type(ctx.args)`, want: "ctx dict"},
		{name: "empty map is falsy", expr: `str(bool(ctx.flow.trigger))`, want: "False"},
		{name: "strings", expr: `ctx.project + ctx.stage + ctx.branch_name + ctx.branch.name`, want: "shopBuildmainMain"},
		{name: "numbers", expr: `str(ctx.flow.id + ctx.run.id + ctx.flow.seq.shared)`, want: "58"},
		{name: "labels", expr: `ctx.flow_label + ctx.run_label + ctx.run.label`, want: "v1.40run.5run.5"},
		{name: "flags", expr: `str([ctx.is_ci, ctx.is_dev])`, want: "[True, False]"},
		{name: "secrets", expr: `ctx.secrets.token + str(ctx.secrets.nope)`, want: "s3cr3tNone"},
		{name: "ctx is strict", expr: `ctx.nope`, err: `ctx has no field "nope" (known: args, branch, branch_name, env, flow, flow_label, is_ci, is_dev, project, project_data, run, run_label, secrets, stage)`},
		{name: "flow is strict", expr: `ctx.flow.seq.mine`, err: `ctx.flow.seq has no field "mine"`},
		{name: "ctx is read-only", expr: `setattr(ctx, "x", 1)`, err: "undefined: setattr"},
		{name: "unhashable", expr: `str({ctx.args: 1})`, err: "unhashable type: dict"},
		{name: "missing strict key indexed", expr: `ctx.flow["nope"]`, err: `key "nope" not in dict`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code := "def stage(ctx):\n    return {\"parent\": " + tt.expr + "}\n"
			st, err := Eval(context.Background(), "stage.py", []byte(code), c, Limits{})
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, st.Parent)
		})
	}
}
