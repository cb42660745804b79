package tools

import (
	"context"
	"errors"
	"fmt"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/tools/parse"
)

// GoTest is Kraken's `gotest` tool: it runs `<go_exe> test -json <params>`
// in the job's system and reports each test as its events stream in.
// Parameters:
//
//	go_exe   the go command (default go)
//	params   arguments after -json, split like shell words (default: none,
//	         which tests the package in cwd; use ./... for all)
//	cwd      working directory (default: the workspace)
//	timeout  seconds
//
// Tests are named <package>::<Test>; a test is registered as not-run when it
// starts, then reported passed, failed (with its output as message) or
// disabled (skipped). The log shows the normal go test output. The step
// fails when a test or a package fails, or go test exits non-zero.
type GoTest struct{}

// Run runs go test.
func (GoTest) Run(ctx context.Context, env executor.Env, st Step) Result {
	const tool = "gotest"
	var errs []error
	goExe, _, err := String(st.Fields, "go_exe")
	errs = append(errs, err)
	params, _, err := String(st.Fields, "params")
	errs = append(errs, err)
	args, err := SplitArgs(params)
	if err != nil {
		errs = append(errs, fmt.Errorf("params: %w", err))
	}
	timeout, _, err := Seconds(st.Fields, "timeout")
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return badParams(tool, err)
	}
	if goExe == "" {
		goExe = "go"
	}
	if err := st.needServices(tool); err != nil {
		return stepError(ctx, tool, err)
	}
	ws := NewWorkspace(env)
	dir, err := workspaceDirs(ws, st.Fields)
	if err != nil {
		return badParams(tool, err)
	}
	rep := startReporter(ctx, st.Services)
	p := parse.NewGoTest()
	lw := &lineWriter{fn: func(line []byte) {
		show, results := p.Line(line)
		if show != "" {
			_, _ = st.Output.Write([]byte(show))
		}
		for _, r := range results {
			rep.test(r)
		}
	}}
	argv := append([]string{goExe, "test", "-json"}, args...)
	fmt.Fprintf(st.Output, "%s: running %q in %s\n", tool, argv, dir)
	res, fail, ok := runCommand(ctx, env, tool, executor.Command{
		Argv: argv, Env: envList(st.Env, nil), Dir: dir, Timeout: timeout, Output: lw,
	})
	lw.flush()
	if !ok {
		_ = rep.close()
		return fail
	}
	var cmdFailed *Result
	if res.ExitCode != 0 {
		code := res.ExitCode
		cmdFailed = &Result{Status: ci.StepFailed, ExitCode: &code, Reason: ReasonRetcode,
			Message: fmt.Sprintf("go test exited with code %d", code)}
	}
	return testsResult(ctx, tool, st, rep, cmdFailed, nil)
}
