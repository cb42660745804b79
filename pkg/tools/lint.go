package tools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/tools/parse"
)

// Pylint is Kraken's `pylint` tool: findings become issues. Parameters:
//
//	pylint_exe           the pylint command (default pylint)
//	rcfile               pylint's --rcfile
//	modules_or_packages  what to check, split like shell words (required)
//	cwd                  working directory (default: the workspace)
//	timeout              seconds
//
// It runs `pylint -f json --exit-zero --output=<workspace>/.kk/pylint-<step>.json
// [--rcfile=F] <modules_or_packages>` (pylint >= 2.8 for --output) and reads
// the report. The step fails only when pylint itself fails.
type Pylint struct{}

// Run runs pylint.
func (Pylint) Run(ctx context.Context, env executor.Env, st Step) Result {
	const tool = "pylint"
	var errs []error
	exe, _, err := String(st.Fields, "pylint_exe")
	errs = append(errs, err)
	rcfile, _, err := String(st.Fields, "rcfile")
	errs = append(errs, err)
	mods, _, err := String(st.Fields, "modules_or_packages")
	errs = append(errs, err)
	targets, err := SplitArgs(mods)
	if err != nil {
		errs = append(errs, fmt.Errorf("modules_or_packages: %w", err))
	} else if len(targets) == 0 {
		errs = append(errs, errors.New("modules_or_packages is required: the modules or packages to check"))
	}
	timeout, _, err := Seconds(st.Fields, "timeout")
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return badParams(tool, err)
	}
	if exe == "" {
		exe = "pylint"
	}
	argv := []string{exe, "-f", "json", "--exit-zero"}
	if rcfile != "" {
		argv = append(argv, "--rcfile="+rcfile)
	}
	return runLinter(ctx, env, st, tool, "json", func(report string) []string {
		return append(append(argv, "--output="+report), targets...)
	}, timeout, parse.Pylint, func(res executor.Result) bool { return res.ExitCode == 0 })
}

// NgLint is Kraken's `nglint` tool: `npx ng lint --format json` findings
// (ESLint or TSLint builders) become issues. Parameters:
//
//	cwd  the Angular project's directory (default: the workspace)
//
// The report goes to <workspace>/.kk/nglint-<step>.json (--output-file);
// when the builder ignores that option it is read from the output. ng lint
// exits non-zero when it finds errors: the step is still ok when the report
// could be read (the findings are the result).
type NgLint struct{}

// Run runs ng lint.
func (NgLint) Run(ctx context.Context, env executor.Env, st Step) Result {
	return runLinter(ctx, env, st, "nglint", "json", func(report string) []string {
		return []string{"npx", "--no-install", "ng", "lint", "--format", "json", "--output-file", report}
	}, 0, parse.NgLint, func(executor.Result) bool { return true })
}

// runLinter runs a linter that writes a JSON report to a file (argv gets its
// path), tees its output into the log and a spool file (the fallback report),
// and reports the issues parsed from the report.
func runLinter(ctx context.Context, env executor.Env, st Step, tool, ext string, argv func(report string) []string,
	timeout time.Duration, parser func(io.Reader, func(api.Issue) error) error,
	exitOK func(executor.Result) bool) Result {
	if err := st.needServices(tool); err != nil {
		return stepError(ctx, tool, err)
	}
	ws := NewWorkspace(env)
	dir, err := workspaceDirs(ws, st.Fields)
	if err != nil {
		return badParams(tool, err)
	}
	kk, err := ws.kkDir()
	if err != nil {
		return stepError(ctx, tool, err)
	}
	report := filepath.Join(kk, tool+"-"+strconv.Itoa(st.Index)+"."+ext)
	_ = os.Remove(report)
	spool, err := os.CreateTemp(kk, tool+"-output-*")
	if err != nil {
		return stepError(ctx, tool, err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	cmd := executor.Command{Argv: argv(report), Env: envList(st.Env, nil), Dir: dir, Timeout: timeout,
		Output: io.MultiWriter(st.Output, spool)}
	fmt.Fprintf(st.Output, "%s: running %q in %s\n", tool, cmd.Argv, dir)
	res, fail, ok := runCommand(ctx, env, tool, cmd)
	if !ok {
		return fail
	}
	rep := startReporter(ctx, st.Services)
	emit := func(is api.Issue) error { rep.issue(is); return nil }
	var perr error
	if f, err := ws.Open(report); err == nil {
		perr = parser(f, emit)
		f.Close()
	} else {
		if _, err := spool.Seek(0, io.SeekStart); err == nil {
			perr = parser(spool, emit)
		}
	}
	var cmdFailed *Result
	if !exitOK(res) {
		code := res.ExitCode
		cmdFailed = &Result{Status: ci.StepFailed, ExitCode: &code, Reason: ReasonRetcode,
			Message: fmt.Sprintf("%s exited with code %d", cmd.Argv[0], code)}
	}
	if perr != nil {
		perr = fmt.Errorf("no report could be read: %w", perr)
	}
	return testsResult(ctx, tool, st, rep, cmdFailed, perr)
}
