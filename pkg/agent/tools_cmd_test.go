package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// TestGoTestTool runs the gotest tool on a module the job writes, with the
// host's go: results stream in, failures fail the step.
func TestGoTestTool(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	builtinAgent(t, s, nil)
	mod := "cat > go.mod <<'EOF'\nmodule example.com/m\n\ngo 1.21\nEOF\n" +
		"cat > m_test.go <<'EOF'\npackage m\n\nimport \"testing\"\n\n" +
		"func TestOK(t *testing.T) { t.Log(\"fine\") }\n" +
		"func TestBad(t *testing.T) { t.Fatal(\"want 1, got 2\") }\n" +
		"func TestSkip(t *testing.T) { t.Skip(\"not here\") }\n" +
		"func TestSub(t *testing.T) { t.Run(\"a\", func(t *testing.T) {}) }\nEOF\n"
	asg := assignment(1,
		shell("mkdir -p m && cd m && "+mod),
		step("gotest", "cwd", "m", "params", "-count=1 ."),
	)
	asg.Env["GOFLAGS"] = "-mod=mod"
	asg.Env["GOTOOLCHAIN"] = "local"
	s.addJob(asg)
	c := s.completed(1, 120*time.Second)
	assert.Equal(t, ci.JobFailed, c.Result)
	s.mu.Lock()
	last := s.job(1).lastStep(1)
	log := s.job(1).logText(1)
	s.mu.Unlock()
	assert.Equal(t, ci.StepFailed, last.Status, log)
	assert.Contains(t, last.Message, "1 failed", log)
	assert.Contains(t, log, "--- FAIL: TestBad")
	res := s.finalResults(1)
	assert.Equal(t, api.TestPassed, res["example.com/m::TestOK"].Status)
	assert.Equal(t, api.TestFailed, res["example.com/m::TestBad"].Status)
	assert.Contains(t, res["example.com/m::TestBad"].Message, "want 1, got 2")
	assert.Equal(t, api.TestDisabled, res["example.com/m::TestSkip"].Status)
	assert.Equal(t, api.TestPassed, res["example.com/m::TestSub/a"].Status)
}

// fakeProgram writes an executable shell script named name into dir.
func fakeProgram(t *testing.T, dir, name, script string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script), 0o755))
}

// TestReportTools runs pytest, pylint, cloc and nglint against stand-in
// programs (shell scripts on the job's PATH that answer like the real ones
// and write their reports where the tools ask): it checks the tools' command
// lines, report handling and results, not the programs.
func TestReportTools(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	// pytest: collection with -q lists node ids; a run writes --junit-xml.
	fakeProgram(t, bin, "pytest", `
case "$1" in
--collect-only) echo "tests/test_a.py::TestK::test_one"; echo "tests/test_a.py::test_two"; echo; echo "2 tests collected"; exit 0;;
--junit-xml=*) f="${1#--junit-xml=}"; echo "running $*"
  printf '<testsuites><testsuite><testcase classname="tests.test_a.TestK" name="test_one" time="0.1"/><testcase classname="tests.test_a" name="test_two"><failure message="boom"/></testcase></testsuite></testsuites>' > "$f"; exit 1;;
esac
exit 4`)
	fakeProgram(t, bin, "pylint", `
for a in "$@"; do case "$a" in --output=*) out="${a#--output=}";; esac; done
test "$1 $2 $3" = "-f json --exit-zero" || exit 32
printf '[{"type":"warning","path":"pkg/m.py","line":2,"column":4,"symbol":"unused-import","message":"Unused import os","message-id":"W0611"}]' > "$out"`)
	fakeProgram(t, bin, "cloc", `
for a in "$@"; do case "$a" in --out=*) out="${a#--out=}";; esac; done
printf '{"header":{"n_files":3},"Go":{"nFiles":2,"blank":1,"comment":2,"code":30},"SUM":{}}' > "$out"`)
	fakeProgram(t, bin, "npx", `
test "$*" = "--no-install ng lint --format json --output-file ${7}" || { echo "bad args: $*"; exit 9; }
printf '[{"filePath":"src/a.ts","messages":[{"ruleId":"no-var","severity":2,"message":"Unexpected var","line":1,"column":1}]}]' > "$7"; exit 1`)

	s := newFakeServer(t)
	builtinAgent(t, s, nil)
	asg := assignment(1,
		step("pytest", "params", "-x tests"),
		step("pylint", "modules_or_packages", "pkg", "when", "always"),
		step("cloc", "exclude-dir", "vendor", "when", "always"),
		step("nglint", "when", "always"),
		step("pytest", "pytest_exe", "no-such-pytest", "when", "always"),
	)
	asg.Env["PATH"] = bin + ":" + os.Getenv("PATH")
	s.addJob(asg)
	s.completed(1, 60*time.Second)
	s.mu.Lock()
	j := s.job(1)
	statuses := j.stepStatuses(5)
	logs := []string{j.logText(0), j.logText(1), j.logText(2), j.logText(3), j.logText(4)}
	last4 := j.lastStep(4)
	issues := append([]api.Issue(nil), s.assets.issues[1]...)
	s.mu.Unlock()
	assert.Equal(t, []string{"failed", "ok", "ok", "ok", "error"}, statuses, "%q", logs)
	assert.Contains(t, logs[0], "collected 2 tests")
	assert.Contains(t, last4.Message, "no-such-pytest is not installed in the job's system")

	res := s.finalResults(1)
	assert.Equal(t, api.TestPassed, res["tests.test_a.TestK::test_one"].Status)
	assert.Equal(t, api.TestFailed, res["tests.test_a::test_two"].Status)
	assert.Equal(t, "boom", res["tests.test_a::test_two"].Message)
	assert.Equal(t, 33.0, res["Go"].Values["total"].Value)
	assert.Equal(t, 2.0, res["Go"].Values["files"].Value)
	assert.ElementsMatch(t, []api.Issue{
		{Path: "pkg/m.py", Line: 2, Column: 4, Type: "warning", Symbol: "unused-import", Message: "Unused import os"},
		{Path: "src/a.ts", Line: 1, Column: 1, Type: "error", Symbol: "no-var", Message: "Unexpected var"},
	}, issues)
}
