package tools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/executor"
	"github.com/kraken-go/kk/pkg/tools/parse"
)

// Cloc is Kraken's `cloc` tool: it counts lines of code with cloc in the
// job's system; each language becomes a passed test result with the values
// files, blank, comment, code and total (blank+comment+code). Parameters:
//
//	not-match-f  cloc's --not-match-f regex (files to leave out)
//	exclude-dir  cloc's --exclude-dir (comma-separated directory names)
//	cwd          directory to count (default: the workspace)
type Cloc struct{}

// Run runs cloc.
func (Cloc) Run(ctx context.Context, env executor.Env, st Step) Result {
	const tool = "cloc"
	notMatch, _, err1 := String(st.Fields, "not-match-f")
	exclude, _, err2 := String(st.Fields, "exclude-dir")
	if err := errors.Join(err1, err2); err != nil {
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
	kk, err := ws.kkDir()
	if err != nil {
		return stepError(ctx, tool, err)
	}
	report := filepath.Join(kk, "cloc-"+strconv.Itoa(st.Index)+".json")
	_ = os.Remove(report)
	argv := []string{"cloc", "--json", "--quiet", "--out=" + report, "--exclude-dir=.kk" + commaPrefix(exclude)}
	if notMatch != "" {
		argv = append(argv, "--not-match-f="+notMatch)
	}
	argv = append(argv, ".")
	fmt.Fprintf(st.Output, "%s: running %q in %s\n", tool, argv, dir)
	res, fail, ok := runCommand(ctx, env, tool, executor.Command{Argv: argv, Env: envList(st.Env, nil), Dir: dir, Output: st.Output})
	if !ok {
		return fail
	}
	rep := startReporter(ctx, st.Services)
	f, err := ws.Open(report)
	if err != nil {
		_ = rep.close()
		return stepFailed(tool, fmt.Sprintf("cloc wrote no report (exit code %d): %v", res.ExitCode, err))
	}
	langs, err := parse.Cloc(io.Reader(f))
	f.Close()
	if err != nil {
		_ = rep.close()
		return stepFailed(tool, err.Error())
	}
	for _, l := range langs {
		rep.test(api.TestResult{Name: l.Name, Status: api.TestPassed, Values: map[string]api.TestValue{
			"files":   {Value: float64(l.Files)},
			"blank":   {Value: float64(l.Blank)},
			"comment": {Value: float64(l.Comment)},
			"code":    {Value: float64(l.Code)},
			"total":   {Value: float64(l.Blank + l.Comment + l.Code)},
		}})
		fmt.Fprintf(st.Output, "%-20s files %6d  blank %8d  comment %8d  code %8d\n", l.Name, l.Files, l.Blank, l.Comment, l.Code)
	}
	return testsResult(ctx, tool, st, rep, nil, nil)
}

func commaPrefix(s string) string {
	if s == "" {
		return ""
	}
	return "," + s
}
