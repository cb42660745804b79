package tools

import (
	"context"
	"errors"
	"fmt"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/tools/parse"
)

// JUnitCollect is Kraken's `junit_collect` tool: it reads JUnit XML reports
// from the workspace (written by earlier steps) and reports their test cases.
// Parameters:
//
//	file_glob  glob of the report files (required; `**` allowed)
//	cwd        directory the glob is relative to (default: the workspace)
//
// Test names are classname::name. The reports are parsed as streams, so
// huge reports take little memory; results go to kkd in batches. The step
// fails when a test failed or a report cannot be parsed, and when the glob
// matches no file.
type JUnitCollect struct{}

// Run collects the reports.
func (JUnitCollect) Run(ctx context.Context, env executor.Env, st Step) Result {
	const tool = "junit_collect"
	glob, ok, err := String(st.Fields, "file_glob")
	if err == nil && (!ok || glob == "") {
		err = errors.New("file_glob is required: the JUnit XML files to read, e.g. reports/**/*.xml")
	}
	if err != nil {
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
	files, err := ws.Glob(dir, "file_glob", glob)
	if err != nil {
		return badParams(tool, err)
	}
	if len(files) == 0 {
		msg := fmt.Sprintf("file_glob %q matches no file in %s", glob, dir)
		fmt.Fprintln(st.Output, tool+": "+msg)
		return stepFailed(tool, msg)
	}
	rep := startReporter(ctx, st.Services)
	var parseErrs []error
	for _, f := range files {
		n, err := collectJUnitFile(ws, f.Abs, rep)
		if err != nil {
			fmt.Fprintf(st.Output, "%s: %s: %v\n", tool, f.Rel, err)
			parseErrs = append(parseErrs, fmt.Errorf("%s: %w", f.Rel, err))
			continue
		}
		fmt.Fprintf(st.Output, "%s: %s: %d test cases\n", tool, f.Rel, n)
	}
	return testsResult(ctx, tool, st, rep, nil, errors.Join(parseErrs...))
}

func collectJUnitFile(ws Workspace, p string, rep *reporter) (int, error) {
	f, err := ws.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	err = parse.JUnit(f, func(t api.TestResult) error {
		n++
		rep.test(t)
		return nil
	})
	return n, err
}

// testsResult closes the reporter and makes the step's result: failed when
// a test failed or errored, when the command failed (cmdFailed) or when
// something could not be read (problem).
func testsResult(ctx context.Context, tool string, st Step, rep *reporter, cmdFailed *Result, problem error) Result {
	err := rep.close()
	summary := rep.summary()
	fmt.Fprintf(st.Output, "%s: %s\n", tool, summary)
	if err != nil {
		return stepError(ctx, tool, fmt.Errorf("results not delivered: %w", err))
	}
	if r, ok := interrupted(ctx); ok {
		return r
	}
	switch {
	case problem != nil:
		return stepFailed(tool, problem.Error())
	case rep.failures() > 0:
		r := stepFailed(tool, summary)
		if cmdFailed != nil {
			r.ExitCode, r.Reason = cmdFailed.ExitCode, cmdFailed.Reason
		}
		return r
	case cmdFailed != nil:
		r := *cmdFailed
		r.Message = tool + ": " + r.Message + " (" + summary + ")"
		return r
	}
	return Result{Status: ci.StepOK, Message: summary}
}
