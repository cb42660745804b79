package schema

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wrap puts steps (a Python list body) into a minimal valid stage.
func wrap(steps string) string {
	return `def stage(ctx):
    return {
        "jobs": [{
            "name": "build",
            "steps": [` + steps + `],
            "environments": [{"agents_group": "all", "system": "any"}],
        }],
    }
`
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	return b
}

func TestEvalValid(t *testing.T) {
	t.Parallel()
	exampleA := readFile(t, "testdata/example_a.py")
	exampleB := readFile(t, "testdata/example_b.py")
	tests := []struct {
		name  string
		code  []byte
		ctx   Context
		check func(t *testing.T, st *Stage)
	}{
		{
			name: "example A on CI",
			code: exampleA,
			ctx:  Context{IsCI: true},
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, "root", st.Parent)
				assert.Equal(t, "0 2 * * *", st.Triggers.Cron)
				assert.Equal(t, "15m", st.Triggers.Repo["interval"])
				assert.Nil(t, st.Triggers.Parent, "explicit triggers get no parent default")
				assert.Equal(t, []Parameter{{Name: "race", Type: "string", Default: "no", Description: "Run tests with -race (yes/no)"}}, st.Parameters)
				assert.Equal(t, "shop-#{flow.seq.own}", st.FlowLabel)
				require.Len(t, st.Jobs, 2)
				assert.Equal(t, 1800, st.Jobs[0].Timeout)
				assert.Equal(t, []string{"golang:1.22", "golang:1.21"}, st.Jobs[0].Environments[0].System)
				assert.Equal(t, "./...", st.Jobs[0].Steps[2]["params"], "args.race defaults to no")
				assert.Equal(t, "was_no_error and is_ci", st.Jobs[0].Steps[3]["when"])
				assert.Equal(t, "local", st.Jobs[1].Environments[0].Executor)
				assert.Equal(t, "make dist VERSION=#{flow.label}\nls -l dist", st.Jobs[1].Steps[1]["script"])
				assert.Equal(t, map[string]any{"channel": "shop-ci"}, st.Notification["slack"])
				assert.Len(t, st.Instances(), 3)
			},
		},
		{
			name: "example A on DEV with race",
			code: exampleA,
			ctx:  Context{IsCI: false, Args: map[string]string{"race": "yes"}},
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, []string{"golang:1.22"}, st.Jobs[0].Environments[0].System)
				assert.Equal(t, "-race ./...", st.Jobs[0].Steps[2]["params"])
				assert.Len(t, st.Instances(), 2)
			},
		},
		{
			name: "example B without flow data",
			code: exampleB,
			ctx:  Context{IsCI: true},
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, "Build", st.Parent)
				assert.True(t, st.Triggers.Manual)
				assert.Nil(t, st.Triggers.Parent)
				require.Len(t, st.Jobs, 1)
				assert.Equal(t, "deploy staging", st.Jobs[0].Name)
				assert.Equal(t, "./deploy.sh staging pkg", st.Jobs[0].Steps[1]["cmd"])
				assert.Equal(t, int64(3), st.Jobs[0].Steps[1]["attempts"])
				assert.Equal(t, ".deploys.staging += 1", st.Jobs[0].Steps[4]["value"])
				assert.Equal(t, "always", st.Jobs[0].Steps[5]["when"])
				assert.Equal(t, "ops@acme.example", st.Notification["email"])
			},
		},
		{
			name: "example B with flow data",
			code: exampleB,
			ctx:  Context{Flow: FlowInfo{Data: map[string]any{"targets": []any{"eu", "us"}}}},
			check: func(t *testing.T, st *Stage) {
				require.Len(t, st.Jobs, 2)
				assert.Equal(t, "deploy eu", st.Jobs[0].Name)
				assert.Equal(t, "deploy us", st.Jobs[1].Name)
			},
		},
		{
			name: "percent formatting",
			code: []byte(wrap(`{"tool": "shell", "cmd": "echo %s-%d %5.1f %r" % (ctx.branch_name, 7, 2.25, "q")},
                      {"tool": "shell", "cmd": "echo %(a)s" % {"a": "x"}},
                      {"tool": "shell", "cmd": "echo %s" % ctx.project}`)),
			ctx: Context{BranchName: "main", Project: "shop"},
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, `echo main-7   2.2 "q"`, st.Jobs[0].Steps[0]["cmd"])
				assert.Equal(t, "echo x", st.Jobs[0].Steps[1]["cmd"])
				assert.Equal(t, "echo shop", st.Jobs[0].Steps[2]["cmd"])
			},
		},
		{
			name: "is_ci branching and format method",
			code: []byte(`def stage(ctx):
    if ctx.is_ci:
        cmd = "make release"
    elif ctx.is_dev:
        cmd = "make check"
    else:
        cmd = None
    return {"jobs": [{"name": "b", "steps": [{"tool": "shell", "cmd": "{} #{}".format(cmd, ctx.flow.kind)}],
                      "environments": [{"agents_group": "all", "system": "any"}]}]}
`),
			ctx: Context{IsCI: false},
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, "make check #DEV", st.Jobs[0].Steps[0]["cmd"])
			},
		},
		{
			name: "parameter defaults reach ctx.args",
			code: []byte(`def stage(ctx):
    return {
        "parameters": [{"name": "count", "type": "string", "default": "5"},
                       {"name": "mode", "default": "fast", "description": "speed"}],
        "jobs": [{"name": "t", "steps": [
            {"tool": "rndtest", "count": ctx.args.count or "1"},
            {"tool": "shell", "cmd": "run --mode=%s" % ctx.args["mode"]},
            {"tool": "shell", "cmd": "x=%s" % ctx.args.get("missing", "dflt")},
            {"tool": "shell", "cmd": "in=%s" % ("count" in ctx.args)},
        ], "environments": [{"agents_group": "all", "system": "any"}]}],
    }
`),
			check: func(t *testing.T, st *Stage) {
				steps := st.Jobs[0].Steps
				assert.Equal(t, "5", steps[0]["count"])
				assert.Equal(t, "run --mode=fast", steps[1]["cmd"])
				assert.Equal(t, "x=dflt", steps[2]["cmd"])
				assert.Equal(t, "in=True", steps[3]["cmd"])
				assert.Equal(t, "string", st.Parameters[1].Type)
				assert.Equal(t, map[string]string{"count": "5", "mode": "fast"}, st.Args(nil))
			},
		},
		{
			name: "given args override defaults",
			code: []byte(`def stage(ctx):
    return {
        "parameters": [{"name": "count", "type": "string", "default": "5"}],
        "jobs": [{"name": "t", "steps": [{"tool": "rndtest", "count": ctx.args.count}],
                  "environments": [{"agents_group": "all", "system": "any"}]}],
    }
`),
			ctx: Context{Args: map[string]string{"count": "9"}},
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, "9", st.Jobs[0].Steps[0]["count"])
			},
		},
		{
			name: "triple-quoted multi-line script",
			code: []byte(wrap(`{"tool": "shell", "script": """
set -e
echo "hello 'world'"
make -j4
"""}`)),
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, "\nset -e\necho \"hello 'world'\"\nmake -j4\n", st.Jobs[0].Steps[0]["script"])
			},
		},
		{
			name: "python dialect: top-level loops, while, set, reassign, recursion, True/False/None",
			code: []byte(`SYSTEMS = []
for v in ["20.04", "22.04"]:
    SYSTEMS.append("ubuntu-" + v)
SYSTEMS = SYSTEMS + ["debian-12"]

def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)

def stage(ctx):
    i = 0
    while i < 3:
        i += 1
    uniq = sorted(set(["b", "a", "b"]))
    flag = None
    return {
        "parent": "root",
        "triggers": {"parent": True, "manual": False},
        "jobs": [{
            "name": "n%d" % fact(i),
            "timeout": 60 * 10,
            "steps": [{"tool": "shell", "cmd": ",".join(uniq), "background": False, "timeout": 30}],
            "environments": [{"agents_group": "all", "system": SYSTEMS, "config": flag}],
        }],
    }
`),
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, "n6", st.Jobs[0].Name)
				assert.Equal(t, 600, st.Jobs[0].Timeout)
				assert.Equal(t, "a,b", st.Jobs[0].Steps[0]["cmd"])
				assert.Equal(t, []string{"ubuntu-20.04", "ubuntu-22.04", "debian-12"}, st.Jobs[0].Environments[0].System)
				require.NotNil(t, st.Triggers.Parent)
				assert.True(t, *st.Triggers.Parent)
			},
		},
		{
			name: "missing and empty triggers default to parent true",
			code: []byte(`def stage(ctx):
    return {"triggers": {}}
`),
			check: func(t *testing.T, st *Stage) {
				require.NotNil(t, st.Triggers.Parent)
				assert.True(t, *st.Triggers.Parent)
				assert.Equal(t, "root", st.Parent)
				assert.Equal(t, []Job{}, st.Jobs)
				assert.Equal(t, []Parameter{}, st.Parameters)
			},
		},
		{
			name: "explicit parent false is kept",
			code: []byte(`def stage(ctx):
    return {"triggers": {"parent": False, "cron": "*/15 9-17 * jan-jun mon-fri", "interval": "1h30m",
                         "date": "2012-01-19 17:21:00", "github": {"push": True, "pull_request": True},
                         "gitlab": ["push"], "gitea": True}}
`),
			check: func(t *testing.T, st *Stage) {
				require.NotNil(t, st.Triggers.Parent)
				assert.False(t, *st.Triggers.Parent)
				assert.Equal(t, "1h30m", st.Triggers.Interval)
				assert.Equal(t, map[string]any{"push": true, "pull_request": true}, st.Triggers.Webhooks["github"])
				assert.Len(t, st.Triggers.Webhooks, 3)
			},
		},
		{
			name: "repo trigger with several repos",
			code: []byte(`def stage(ctx):
    return {"triggers": {"repo": {"repos": [{"url": "https://a/x.git", "branch": "main"}, {"url": "https://a/y.git"}],
                                  "interval": 600, "git_cfg": {"http.sslVerify": "false"}}}}
`),
			check: func(t *testing.T, st *Stage) {
				assert.Len(t, st.Triggers.Repo["repos"], 2)
			},
		},
		{
			name: "every built-in tool",
			code: []byte(wrap(`
                {"tool": "shell", "cmd": "true", "cwd": "src", "user": "root", "env": {"A": "1"}, "timeout": 60,
                 "background": True, "shell_exe": "/bin/bash", "ssh-key": "key", "name": "s", "attempts": 2,
                 "sleep_time_after_attempt": 0, "when": "prev_ok"},
                {"tool": "git", "checkout": "https://x/y.git", "branch": "dev", "destination": "y", "ssh-key": "k",
                 "access-token": "t", "timeout": 100, "git_cfg": {"core.autocrlf": "false"}},
                {"tool": "artifacts", "action": "upload", "source": "a.txt", "destination": ".", "cwd": ".",
                 "public": True, "report_entry": "index.html"},
                {"tool": "cache", "action": "save", "key": "k", "paths": ["a", "b"], "expiry": "1d"},
                {"tool": "cache", "action": "restore", "keys": ["k1", "k2"]},
                {"tool": "data", "value": {"a": [1, 2.5, None]}, "operation": "set", "json_pointer": "/x", "scope": "branch-ci"},
                {"tool": "data", "operation": "get", "scope": "project"},
                {"tool": "pytest", "pytest_exe": "pytest", "params": "-x", "pythonpath": "src", "cwd": ".", "timeout": 90},
                {"tool": "junit_collect", "file_glob": "**/*.xml", "cwd": "out"},
                {"tool": "gotest", "go_exe": "go", "params": "./...", "cwd": ".", "timeout": 300},
                {"tool": "values_collect", "files": [{"name": "m.json", "namespace": "perf"}], "cwd": "."},
                {"tool": "pylint", "pylint_exe": "pylint", "rcfile": "rc", "modules_or_packages": "pkg", "timeout": 60},
                {"tool": "nglint", "cwd": "ui"},
                {"tool": "cloc", "not-match-f": "x", "exclude-dir": "vendor", "cwd": "."},
                {"tool": "rndtest", "count": 10, "override_result": "#{args.r}"},
                {"tool": "local_tool", "tool_location": "/opt/t", "tool_entry": "main", "anything": [1]},
                {"tool": "shell@2", "cmd": "versioned"},
            `)),
			check: func(t *testing.T, st *Stage) {
				assert.Len(t, st.Jobs[0].Steps, 17)
				assert.Equal(t, "shell", st.Jobs[0].Steps[16].Tool())
			},
		},
		{
			name: "interpolated scalars are accepted",
			code: []byte(wrap(`{"tool": "shell", "cmd": "x", "timeout": "#{args.t}", "attempts": "#{args.n}",
                                "background": "#{args.bg}"},
                               {"tool": "artifacts", "source": "a", "action": "#{args.action}"}`)),
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, "#{args.t}", st.Jobs[0].Steps[0]["timeout"])
			},
		},
		{
			name: "job timeout with #{} is interpolated at evaluation",
			code: []byte(`def stage(ctx):
    return {"parameters": [{"name": "t", "default": "120"}],
            "timeout": "#{args.t}0",
            "jobs": [{"name": "b", "timeout": "#{args.t}", "steps": [],
                      "environments": [{"agents_group": "all", "system": ["a", "b"], "executor": "lxd"}]}]}
`),
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, 120, st.Jobs[0].Timeout)
				assert.Equal(t, 1200, st.Timeout)
				assert.Equal(t, "lxd", st.Jobs[0].Environments[0].Executor)
			},
		},
		{
			name: "docker environment with a network mode",
			code: []byte(`def stage(ctx):
    return {"jobs": [{"name": "b", "steps": [],
                      "environments": [{"agents_group": "all", "system": "busybox:1", "executor": "docker", "network": "none"}]}]}
`),
			check: func(t *testing.T, st *Stage) {
				inst := st.Instances()
				require.Len(t, inst, 1)
				assert.Equal(t, "docker", inst[0].Executor)
				assert.Equal(t, "busybox:1", inst[0].System)
				assert.Equal(t, "none", inst[0].Network)
			},
		},
		{
			name: "ctx objects may be returned as values",
			code: []byte(wrap(`{"tool": "shell", "cmd": "env", "env": ctx.env}`)),
			ctx:  Context{Env: map[string]string{"A": "1", "B": "2"}},
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, map[string]any{"A": "1", "B": "2"}, st.Jobs[0].Steps[0]["env"])
			},
		},
		{
			name: "nested flow data, seq numbers and labels",
			code: []byte(wrap(`{"tool": "shell", "cmd": "%s %s %d %d %s %s" % (
                ctx.flow.data.deploy.region, ctx.flow.data.nothing, ctx.flow.seq.own, ctx.run.seq.shared,
                ctx.flow_label, ctx.branch.name)}`)),
			ctx: Context{Branch: "Main", Flow: FlowInfo{KindSeq: 4, Label: "v1", Data: map[string]any{"deploy": map[string]any{"region": "eu"}}},
				Run: RunInfo{Seq: 2}},
			check: func(t *testing.T, st *Stage) {
				assert.Equal(t, "eu None 4 2 v1 Main", st.Jobs[0].Steps[0]["cmd"])
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, err := Eval(context.Background(), "stage.py", tt.code, tt.ctx, Limits{})
			require.NoError(t, err)
			tt.check(t, st)
		})
	}
}

// want is an expected problem: position (0 means "not checked"), key path
// and a fragment of the message.
type want struct {
	line, col int
	key       string
	msg       string
}

func TestEvalProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		code string
		want []want
	}{
		{
			name: "syntax error",
			code: "def stage(ctx):\n    return {\n        \"parent\": \"root\",,\n    }\n",
			want: []want{{line: 3, col: 26, msg: "syntax error: got ',', want primary expression"}},
		},
		{
			name: "indentation error",
			code: "def stage(ctx):\nreturn {}\n",
			want: []want{{line: 2, col: 7, msg: "syntax error: got return, want indent"}},
		},
		{
			name: "undefined name",
			code: "def stage(ctx):\n    return {\"parent\": nope}\n",
			want: []want{{line: 2, col: 23, msg: "undefined: nope"}},
		},
		{
			name: "unknown top-level key",
			code: "def stage(ctx):\n    return {\n        \"parent\": \"root\",\n        \"jobz\": [],\n    }\n",
			want: []want{{line: 4, col: 9, key: "jobz", msg: `unknown key "jobz" (did you mean "jobs"? allowed: parent, triggers,`}},
		},
		{
			name: "unknown step key",
			code: `def stage(ctx):
    return {
        "parent": "root",
        "jobs": [{
            "name": "build",
            "steps": [
                {"tool": "git", "checkout": "https://x/y.git"},
                {"tool": "shell", "cmdd": "make"},
            ],
            "environments": [{"agents_group": "all", "system": "any"}],
        }],
    }
`,
			want: []want{
				{line: 8, col: 17, key: "jobs[0].steps[1]", msg: `missing required key "cmd" or "script" for tool shell`},
				{line: 8, col: 35, key: "jobs[0].steps[1].cmdd", msg: `unknown key "cmdd" for tool shell (did you mean "cmd"? allowed: cmd, script, cwd, user, env, timeout, background, shell_exe, ssh-key, tool, name, attempts, sleep_time_after_attempt, when)`},
			},
		},
		{
			name: "missing required tool parameter",
			code: wrap(`{"tool": "shell", "cmd": "a"}, {"tool": "git", "branch": "main"}`),
			want: []want{{line: 5, col: 54, key: "jobs[0].steps[1]", msg: `missing required key "checkout" for tool git`}},
		},
		{
			name: "missing required params of several tools",
			code: wrap(`{"tool": "junit_collect"}, {"tool": "pylint"}, {"tool": "artifacts"}, {"tool": "values_collect"},
                {"tool": "cache", "action": "save"}, {"tool": "cache", "action": "restore"}, {"tool": "cache"},
                {"tool": "data"}, {"tool": "shell", "cmd": "a", "script": "b"}, {"tool": "data", "file": "f", "value": 1}`),
			want: []want{
				{key: "jobs[0].steps[0]", msg: `missing required key "file_glob" for tool junit_collect`},
				{key: "jobs[0].steps[1]", msg: `missing required key "modules_or_packages" for tool pylint`},
				{key: "jobs[0].steps[2]", msg: `missing required key "source" for tool artifacts`},
				{key: "jobs[0].steps[3]", msg: `missing required key "files" for tool values_collect`},
				{key: "jobs[0].steps[4]", msg: `missing required key "key" for cache action save`},
				{key: "jobs[0].steps[4]", msg: `missing required key "paths" for cache action save`},
				{key: "jobs[0].steps[5]", msg: `missing required key "key" or "keys" for cache action restore`},
				{key: "jobs[0].steps[6]", msg: `missing required key "action" for tool cache`},
				{key: "jobs[0].steps[7]", msg: `missing required key "file" or "value" for tool data`},
				{key: "jobs[0].steps[8].script", msg: "give either cmd or script, not both"},
				{key: "jobs[0].steps[9].value", msg: "give either file or value, not both"},
			},
		},
		{
			name: "unknown tool",
			code: wrap(`{"tool": "shel", "cmd": "a"}`),
			want: []want{{line: 5, col: 24, key: "jobs[0].steps[0].tool", msg: `unknown tool "shel" (did you mean "shell"? known: artifacts, cache, cloc,`}},
		},
		{
			name: "bad cron",
			code: "def stage(ctx):\n    return {\"triggers\": {\"cron\": \"61 * * * *\"}}\n",
			want: []want{{line: 2, col: 26, key: "triggers.cron", msg: `invalid cron rule "61 * * * *": minute field: value 61 out of range 0-59`}},
		},
		{
			name: "cron with wrong field count",
			code: "def stage(ctx):\n    return {\"triggers\": {\"cron\": \"* * *\"}}\n",
			want: []want{{key: "triggers.cron", msg: "want 5 fields"}},
		},
		{
			name: "bad interval",
			code: "def stage(ctx):\n    return {\"triggers\": {\"interval\": \"10 parsecs\"}}\n",
			want: []want{{line: 2, col: 26, key: "triggers.interval", msg: `invalid interval "10 parsecs": unknown unit "parsecs"`}},
		},
		{
			name: "bad date and repo trigger",
			code: "def stage(ctx):\n    return {\"triggers\": {\"date\": \"tomorrow\", \"repo\": {\"branch\": 1}}}\n",
			want: []want{
				{key: "triggers.date", msg: `invalid date "tomorrow"`},
				{key: "triggers.repo", msg: `missing required key "url" (or "repos") in repo trigger`},
				{key: "triggers.repo", msg: `missing required key "interval"`},
				{key: "triggers.repo.branch", msg: "expected a string, got int 1"},
			},
		},
		{
			name: "bad token_secret and unknown key in repo trigger",
			code: "def stage(ctx):\n    return {\"triggers\": {\"repo\": {\"url\": \"https://x/r.git\", \"interval\": \"10m\", \"token_secret\": 7, \"tokn\": \"t\"}}}\n",
			want: []want{
				{key: "triggers.repo.token_secret", msg: "token_secret must name a simple project secret holding an access token"},
				{key: "triggers.repo.tokn", msg: "unknown key"},
			},
		},
		{
			name: "duplicate job names",
			code: `def stage(ctx):
    jobs = []
    for i in range(2):
        jobs.append({"name": "same", "steps": [],
                     "environments": [{"agents_group": "all", "system": "any"}]})
    return {"jobs": jobs}
`,
			want: []want{{line: 4, col: 22, key: "jobs[1].name", msg: `duplicate job name "same" (also jobs[0])`}},
		},
		{
			name: "load is refused",
			code: "load(\"lib.star\", \"helper\")\ndef stage(ctx):\n    return {}\n",
			want: []want{{line: 1, col: 1, msg: "load() is not allowed in stage code"}},
		},
		{
			name: "wrong types",
			code: `def stage(ctx):
    return {
        "parent": 1,
        "triggers": {"parent": "yes"},
        "parameters": [{"name": "p", "default": 5, "type": "int"}],
        "configs": [{"a": 1}],
        "flow_label": ["x"],
        "timeout": 10,
        "notification": {"email": 5, "slack": {"chanel": "x"}, "github": "creds"},
        "jobs": [{
            "name": "b",
            "timeout": "abc",
            "steps": {"tool": "shell"},
            "environments": [{"agents_group": "all", "system": 5, "executor": "podman", "network": 1}],
        }, {
            "name": "c",
            "timeout": 10,
            "steps": [{"tool": "shell", "cmd": 1, "attempts": 0, "env": {"A": 1}, "background": "no",
                       "timeout": 2.5, "sleep_time_after_attempt": -1}],
            "environments": [],
        }, "not a job"],
    }
`,
			want: []want{
				{line: 3, col: 9, key: "parent", msg: "expected a string, got int 1"},
				{line: 4, col: 22, key: "triggers.parent", msg: `expected a bool (True or False), got string "yes"`},
				{line: 5, col: 38, key: "parameters[0].default", msg: "expected a string, got int 5"},
				{line: 5, col: 52, key: "parameters[0].type", msg: `invalid value "int" (allowed: string)`},
				{line: 6, col: 22, key: `configs[0].a`, msg: "expected a string, got int 1"},
				{line: 7, col: 9, key: "flow_label", msg: "expected a string, got a list"},
				{line: 8, col: 9, key: "timeout", msg: "must be at least 60, got 10"},
				{line: 9, col: 26, key: "notification.email", msg: "expected a string or a list of strings, got int 5"},
				{line: 9, col: 48, key: "notification.slack.chanel", msg: `unknown key "chanel" in slack notification (did you mean "channel"? allowed: channel, token)`},
				{line: 9, col: 38, key: "notification.slack", msg: `missing required key "channel" in slack notification`},
				{line: 9, col: 64, key: "notification.github", msg: `expected a dict, got string "creds"`},
				{line: 12, col: 13, key: "jobs[0].timeout", msg: `expected an integer, got string "abc"`},
				{line: 13, col: 13, key: "jobs[0].steps", msg: "expected a list, got a dict"},
				{line: 14, col: 54, key: "jobs[0].environments[0].system", msg: "expected a string or a list of strings, got int 5"},
				{line: 14, col: 67, key: "jobs[0].environments[0].executor", msg: `invalid value "podman" (allowed: local, docker, lxd)`},
				{line: 14, col: 89, key: "jobs[0].environments[0].network", msg: "expected a string, got int 1"},
				{line: 17, col: 13, key: "jobs[1].timeout", msg: "must be at least 30, got 10"},
				{line: 18, col: 41, key: "jobs[1].steps[0].cmd", msg: "expected a string, got int 1"},
				{line: 18, col: 51, key: "jobs[1].steps[0].attempts", msg: "must be at least 1, got 0"},
				{line: 18, col: 74, key: "jobs[1].steps[0].env.A", msg: "expected a string, got int 1"},
				{line: 18, col: 83, key: "jobs[1].steps[0].background", msg: `expected a bool (True or False), got string "no"`},
				{line: 19, col: 24, key: "jobs[1].steps[0].timeout", msg: "expected an integer, got float 2.5"},
				{line: 19, col: 40, key: "jobs[1].steps[0].sleep_time_after_attempt", msg: "must be at least 0, got -1"},
				{line: 20, col: 13, key: "jobs[1].environments", msg: "a job needs at least one environment"},
				{line: 21, col: 12, key: "jobs[2]", msg: `expected a dict, got string "not a job"`},
			},
		},
		{
			name: "radicle notifications are refused",
			code: `def stage(ctx):
    return {"notification": {"radicle": {"credentials": "x"}, "slack": {"channel": "#ci", "token": 5}}}
`,
			want: []want{
				{key: "notification.radicle", msg: "radicle notifications are not supported: remove the radicle key (github, discord, slack and email are)"},
				{key: "notification.slack.token", msg: "expected a string, got int 5"},
			},
		},
		{
			name: "job and environment requirements",
			code: `def stage(ctx):
    return {"jobs": [{"steps": [], "environments": [{"system": []}], "retries": 2}]}
`,
			want: []want{
				{key: "jobs[0]", msg: `missing required key "name" in job`},
				{key: "jobs[0].environments[0]", msg: `missing required key "agents_group" in environment`},
				{key: "jobs[0].environments[0].system", msg: "system must name at least one system"},
				{key: "jobs[0].retries", msg: `unknown key "retries" in job (allowed: name, timeout, steps, environments)`},
			},
		},
		{
			name: "bad when expression",
			code: wrap(`{"tool": "shell", "cmd": "a", "when": "was_no_error and"}, {"tool": "shell", "cmd": "b", "when": "was_no_eror"}`),
			want: []want{
				{line: 5, col: 53, key: "jobs[0].steps[0].when", msg: `invalid when expression "was_no_error and"`},
				{line: 5, col: 112, key: "jobs[0].steps[1].when", msg: "undefined: was_no_eror"},
			},
		},
		{
			name: "runtime error in stage",
			code: "def stage(ctx):\n    x = {}\n    return {\"parent\": x[\"missing\"]}\n",
			want: []want{{line: 3, col: 24, msg: `key "missing" not in dict`}},
		},
		{
			name: "unknown ctx attribute",
			code: "def stage(ctx):\n    return {\"parent\": ctx.flow.nope}\n",
			want: []want{{line: 2, col: 31, msg: `ctx.flow has no field "nope" (known: data, id, kind, label, seq, trigger)`}},
		},
		{
			name: "error in a helper reports the innermost frame",
			code: "def helper():\n    return 1 // 0\n\ndef stage(ctx):\n    return {\"parent\": helper()}\n",
			want: []want{{line: 2, col: 14, msg: "floored division by zero"}},
		},
		{
			name: "fail() builtin",
			code: "def stage(ctx):\n    fail(\"no stage for you\")\n",
			want: []want{{line: 2, col: 9, msg: "no stage for you"}},
		},
		{
			name: "no stage function",
			code: "def build(ctx):\n    return {}\n",
			want: []want{{line: 1, col: 1, msg: "stage code must define a function stage(ctx)"}},
		},
		{
			name: "stage returns a list",
			code: "def stage(ctx):\n    x = 1\n    return [x]\n",
			want: []want{{line: 3, col: 5, msg: "stage(ctx) must return a dict, got list"}},
		},
		{
			name: "stage with wrong arity",
			code: "def stage():\n    return {}\n",
			want: []want{{line: 1, col: 1, msg: "function stage accepts no arguments (1 given)"}},
		},
		{
			name: "functions and sets cannot be returned",
			code: "def stage(ctx):\n    return {\"parent\": len, \"configs\": [set([1])], 1: 2}\n",
			want: []want{
				{key: "", msg: "dict key 1 is a int; keys must be strings"},
				{key: "configs[0]", msg: "a value of type set cannot be part of a stage"},
				{key: "parent", msg: "a value of type builtin_function_or_method cannot be part of a stage"},
			},
		},
		{
			name: "self-containing list",
			code: "def stage(ctx):\n    l = []\n    l.append(l)\n    return {\"configs\": l}\n",
			want: []want{{line: 4, col: 13, key: "configs[0][0][0][0][0][0][0]", msg: "nested more than 64 levels deep"}},
		},
		{
			name: "top-level code cannot see ctx",
			code: "X = ctx.is_ci\ndef stage(ctx):\n    return {}\n",
			want: []want{{line: 1, col: 5, msg: "undefined: ctx"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, err := Eval(context.Background(), "stage.py", []byte(tt.code), Context{IsCI: true}, Limits{})
			require.Error(t, err)
			assert.Nil(t, st)
			var ps Problems
			require.True(t, errors.As(err, &ps), "error is %T", err)
			assertProblems(t, ps, tt.want)
		})
	}
}

// assertProblems checks that ps are exactly the wanted problems, in any order.
func assertProblems(t *testing.T, ps Problems, wants []want) {
	t.Helper()
	require.Len(t, ps, len(wants), "problems:\n%s", ps.Error())
	used := make([]bool, len(ps))
	for _, w := range wants {
		found := false
		for i, p := range ps {
			if used[i] || p.Key != w.key || !strings.Contains(p.Message, w.msg) {
				continue
			}
			if w.line != 0 && (p.Line != w.line || p.Col != w.col) {
				continue
			}
			assert.Equal(t, "stage.py", p.File)
			used[i], found = true, true
			break
		}
		assert.True(t, found, "no problem %d:%d %s: %s\nin:\n%s", w.line, w.col, w.key, w.msg, ps.Error())
	}
}

func TestProblemString(t *testing.T) {
	t.Parallel()
	_, err := Eval(context.Background(), "ci/build.py", []byte(wrap(`{"tool": "shell", "cmd": "a", "cmdd": "b"}`)), Context{}, Limits{})
	require.Error(t, err)
	assert.Equal(t, `ci/build.py:5:53: jobs[0].steps[0].cmdd: unknown key "cmdd" for tool shell (did you mean "cmd"? allowed: cmd, script, cwd, user, env, timeout, background, shell_exe, ssh-key, tool, name, attempts, sleep_time_after_attempt, when)`, err.Error())
}
