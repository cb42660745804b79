package schema_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

const okStage = `def stage(ctx):
    return {
        "parameters": [{"name": "greeting", "type": "string", "default": "hello"}],
        "jobs": [{
            "name": "say",
            "steps": [{"tool": "shell", "cmd": "echo %s %s" % (ctx.args.greeting, "ci" if ctx.is_ci else "dev")}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`

const badStage = `def stage(ctx):
    return {
        "jobs": [{
            "name": "say",
            "steps": [{"tool": "shell", "cmd": "echo", "cmdd": "typo"}],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// cmdOf returns the cmd of the first step of the first job.
func cmdOf(t *testing.T, stdout string) string {
	t.Helper()
	var st struct {
		Jobs []struct {
			Steps []map[string]any `json:"steps"`
		} `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &st), stdout)
	require.NotEmpty(t, st.Jobs)
	require.NotEmpty(t, st.Jobs[0].Steps)
	return st.Jobs[0].Steps[0]["cmd"].(string)
}

func TestCheckIsOfflineAndPrintsJSON(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "say.star", okStage)
	e := clitest.NewEnv(t, nil)
	e.Vars["KK_SERVER"] = "http://127.0.0.1:1" // never contacted
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"defaults", nil, "echo hello ci"},
		{"arg overrides default", []string{"--arg", "greeting=hi"}, "echo hi ci"},
		{"dev", []string{"--dev"}, "echo hello dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.Run(t, append([]string{"schema", "check", file}, tc.args...)...)
			require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
			assert.Equal(t, tc.want, cmdOf(t, res.Stdout))
			assert.Regexp(t, `^\{\n  "parent": "root",\n`, res.Stdout, "indented JSON")
		})
	}
}

func TestCheckYAML(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "say.star", okStage)
	res := clitest.NewEnv(t, nil).Run(t, "schema", "check", file, "-o", "yaml")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	var st map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(res.Stdout), &st))
	assert.Equal(t, "root", st["parent"])
}

func TestCheckUnknownArgWarns(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "say.star", okStage)
	res := clitest.NewEnv(t, nil).Run(t, "schema", "check", file, "--arg", "nope=1")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Contains(t, res.Stderr, `warning: --arg nope: the stage declares no parameter "nope"`)
}

func TestCheckProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, code string
		want       string // regexp of a stderr line after "FILE"
	}{
		{"unknown key", badStage, `:5:\d+: jobs\[0\]\.steps\[0\]\.cmdd: .*unknown key`},
		{"syntax error", "def stage(ctx):\n    return {\n", `:3:\d+: .*syntax error`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := writeFile(t, "bad.star", tc.code)
			res := clitest.NewEnv(t, nil).Run(t, "schema", "check", file)
			assert.Equal(t, cmdutil.ExitError, res.Code)
			assert.Empty(t, res.Stdout)
			assert.Regexp(t, regexp.MustCompile("(?m)^"+regexp.QuoteMeta(file)+tc.want), res.Stderr)
		})
	}
}

func TestCheckStdin(t *testing.T) {
	t.Parallel()
	e := clitest.NewEnv(t, nil)
	e.Stdin = badStage
	res := e.Run(t, "schema", "check", "-")
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "<stdin>:5:")
}

func TestCheckUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range []string{"schema check", "schema check a b", "schema check a.star --arg x", "schema frob"} {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			res := clitest.NewEnv(t, nil).Run(t, clitest.Args(args)...)
			assert.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
		})
	}
}

func TestCheckMissingFile(t *testing.T) {
	t.Parallel()
	res := clitest.NewEnv(t, nil).Run(t, "schema", "check", filepath.Join(t.TempDir(), "nope.star"))
	assert.Equal(t, cmdutil.ExitError, res.Code)
	assert.Contains(t, res.Stderr, "nope.star")
}
