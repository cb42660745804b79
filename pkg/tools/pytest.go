package tools

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
)

// Pytest is Kraken's `pytest` tool. Parameters:
//
//	pytest_exe  the pytest command (default pytest-3, else pytest)
//	params      extra arguments, split like shell words
//	pythonpath  PYTHONPATH for the run
//	cwd         working directory (default: the workspace)
//	timeout     seconds, for each of the two pytest runs
//
// It first collects the tests (`--collect-only -q`) and registers them as
// not-run, then runs them all in ONE pytest invocation writing a JUnit XML
// report to <workspace>/.kk/pytest-<step>.xml, and reports the results from
// it. Kraken ran one pytest process per test; one run is much faster and
// keeps fixtures of wider scope working. Test names are classname::name as in
// the JUnit report (tests/test_a.py::TestB::test_c is tests.test_a.TestB::test_c).
type Pytest struct{}

// Run collects and runs the tests.
func (Pytest) Run(ctx context.Context, env executor.Env, st Step) Result {
	const tool = "pytest"
	var errs []error
	exe, _, err := String(st.Fields, "pytest_exe")
	errs = append(errs, err)
	params, _, err := String(st.Fields, "params")
	errs = append(errs, err)
	args, err := SplitArgs(params)
	if err != nil {
		errs = append(errs, fmt.Errorf("params: %w", err))
	}
	pythonpath, _, err := String(st.Fields, "pythonpath")
	errs = append(errs, err)
	timeout, _, err := Seconds(st.Fields, "timeout")
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return badParams(tool, err)
	}
	if err := st.needServices(tool); err != nil {
		return stepError(ctx, tool, err)
	}
	ws := NewWorkspace(env)
	dir, err := workspaceDirs(ws, st.Fields)
	if err != nil {
		return badParams(tool, err)
	}
	var extra map[string]string
	if pythonpath != "" {
		extra = map[string]string{"PYTHONPATH": pythonpath}
	}
	cmdEnv := envList(st.Env, extra)
	cands := []string{exe}
	if exe == "" {
		cands = []string{"pytest-3", "pytest"}
	}

	// Collect.
	var ids []string
	for i, c := range cands {
		ids = ids[:0]
		lw := &lineWriter{fn: func(line []byte) {
			s := strings.TrimSpace(string(line))
			if strings.Contains(s, "::") && !strings.ContainsAny(s[:1], " <=") {
				ids = append(ids, s)
			}
		}}
		res, err := env.Run(ctx, executor.Command{Argv: append([]string{c, "--collect-only", "-q"}, args...),
			Env: cmdEnv, Dir: dir, Timeout: timeout, Output: lw})
		lw.flush()
		if isNotFound(err, res) && i < len(cands)-1 {
			continue
		}
		exe = c
		if err != nil || res.ExitCode == 127 || res.TimedOut || res.Cancelled {
			fail, _ := outcome(ctx, tool, executor.Command{Argv: []string{c}, Timeout: timeout}, res, err)
			return fail
		}
		if res.ExitCode != 0 && res.ExitCode != 5 {
			fmt.Fprintf(st.Output, "%s: test collection failed (exit code %d); the run below shows why\n", tool, res.ExitCode)
		}
		break
	}
	rep := startReporter(ctx, st.Services)
	for _, id := range ids {
		rep.test(api.TestResult{Name: pytestName(id), Status: api.TestNotRun})
	}
	fmt.Fprintf(st.Output, "%s: collected %d tests\n", tool, len(ids))

	// Run them all.
	kk, err := ws.kkDir()
	if err != nil {
		_ = rep.close()
		return stepError(ctx, tool, err)
	}
	report := filepath.Join(kk, "pytest-"+strconv.Itoa(st.Index)+".xml")
	_ = os.Remove(report)
	argv := append([]string{exe, "--junit-xml=" + report}, args...)
	fmt.Fprintf(st.Output, "%s: running %q in %s\n", tool, argv, dir)
	res, fail, ok := runCommand(ctx, env, tool, executor.Command{Argv: argv, Env: cmdEnv, Dir: dir, Timeout: timeout, Output: st.Output})
	if !ok {
		_ = rep.close()
		return fail
	}
	var problem error
	if _, err := ws.Stat(report); err == nil {
		if _, err := collectJUnitFile(ws, report, rep); err != nil {
			problem = fmt.Errorf("read the JUnit report: %w", err)
		}
	} else if res.ExitCode != 5 {
		problem = fmt.Errorf("pytest wrote no JUnit report (exit code %d)", res.ExitCode)
	}
	var cmdFailed *Result
	switch res.ExitCode {
	case 0, 1, 5: // ok, tests failed, no tests
	default:
		code := res.ExitCode
		cmdFailed = &Result{Status: ci.StepFailed, ExitCode: &code, Reason: ReasonRetcode,
			Message: fmt.Sprintf("pytest exited with code %d", code)}
	}
	return testsResult(ctx, tool, st, rep, cmdFailed, problem)
}

// pytestName turns a pytest node id (tests/test_a.py::TestB::test_c[x]) into
// the name its JUnit report gives (tests.test_a.TestB::test_c[x]).
func pytestName(id string) string {
	parts := strings.Split(id, "::")
	if len(parts) < 2 {
		return id
	}
	mod := strings.TrimSuffix(parts[0], ".py")
	mod = strings.ReplaceAll(mod, "/", ".")
	class := append([]string{mod}, parts[1:len(parts)-1]...)
	return strings.Join(class, ".") + "::" + parts[len(parts)-1]
}

// kkDir returns <workspace>/.kk, the agent's directory in the workspace
// (reports, ssh-agent sockets), creating it world-writable with the sticky
// bit: commands running as any user can write their reports there.
func (w Workspace) kkDir() (string, error) {
	p := filepath.Join(w.Dir, ".kk")
	if err := w.MkdirAll(p); err != nil {
		return "", fmt.Errorf("create %s: %w", p, err)
	}
	if err := os.Chmod(p, 0o777|os.ModeSticky); err != nil {
		return "", fmt.Errorf("create %s: %w", p, err)
	}
	return p, nil
}
