package schema

import (
	"context"
	"errors"
	"fmt"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Eval runs stage code (`def stage(ctx): return {...}`) in a sandbox and
// validates the result. Every failure is returned as Problems (syntax error,
// runtime error, limits, validation), each with File:Line:Col when known.
//
// When the returned dict declares parameters whose names c.Args lacks, the
// code is evaluated a second time with their defaults added to ctx.args, as
// Kraken evaluates with default arguments; code must therefore tolerate
// missing args on the first pass (ctx.args.x reads as None).
func Eval(ctx context.Context, filename string, code []byte, c Context, lim Limits) (*Stage, error) {
	return eval(ctx, filename, code, c, lim)
}

// eval is Eval, with panics turned into a problem.
func eval(ctx context.Context, filename string, code []byte, c Context, lim Limits) (st *Stage, err error) {
	if filename == "" {
		filename = "<stage>"
	}
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, Problems{{File: filename, Message: fmt.Sprintf("internal error while evaluating stage code: %v", r)}}
		}
	}()
	lim = lim.withDefaults()
	e := &evaluation{file: filename}
	raw, ps := e.exec(ctx, code, c, lim)
	if len(ps) == 0 {
		if args, missing := rawDefaults(raw, c.Args); missing {
			c.Args = args
			e = &evaluation{file: filename}
			raw, ps = e.exec(ctx, code, c, lim)
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	st, issues := validateStage(raw, c.Vars)
	if len(issues) > 0 {
		return nil, e.located(issues)
	}
	return st, nil
}

// exec parses and runs the code and converts the returned dict.
func (e *evaluation) exec(ctx context.Context, code []byte, c Context, lim Limits) (map[string]any, Problems) {
	if len(code) > MaxCodeBytes {
		return nil, e.problem(Problem{Message: fmt.Sprintf("stage code is larger than %d KiB", MaxCodeBytes>>10)})
	}
	if err := ctx.Err(); err != nil {
		return nil, e.problem(Problem{Message: "evaluation cancelled: " + err.Error()})
	}
	f, err := fileOptions().Parse(e.file, code, 0)
	if err != nil {
		return nil, e.compileProblems(err)
	}
	if ps := e.loadProblems(f); len(ps) > 0 {
		return nil, ps
	}
	rewriteFile(f)
	e.f = f
	predeclared := sandboxBuiltins()
	prog, err := starlark.FileProgram(f, predeclared.Has)
	if err != nil {
		return nil, e.compileProblems(err)
	}
	result, ps := e.run(ctx, prog, predeclared, c, lim)
	if len(ps) > 0 {
		return nil, ps
	}
	raw, issues := convertResult(result)
	if len(issues) > 0 {
		return nil, e.located(issues)
	}
	return raw, nil
}

// rawDefaults returns given plus the defaults of the parameters declared in
// the raw stage dict, and whether any default was missing from given.
func rawDefaults(raw map[string]any, given map[string]string) (map[string]string, bool) {
	params, _ := raw["parameters"].([]any)
	out := make(map[string]string, len(given)+len(params))
	missing := false
	for _, p := range params {
		m, _ := p.(map[string]any)
		name, ok := m["name"].(string)
		if !ok {
			continue
		}
		if _, ok := given[name]; !ok {
			def, _ := m["default"].(string)
			out[name] = def
			missing = true
		}
	}
	for k, v := range given {
		out[k] = v
	}
	return out, missing
}

// evaluation carries what problem reporting needs.
type evaluation struct {
	file string
	f    *syntax.File
	loc  *locator
}

// locator indexes the source literals on first use (only problems need it).
func (e *evaluation) locator() *locator {
	if e.loc == nil {
		e.loc = newLocator(e.f)
	}
	return e.loc
}

// run executes the module and calls stage(ctx) in a sandbox.
func (e *evaluation) run(ctx context.Context, prog *starlark.Program, predeclared starlark.StringDict, c Context, lim Limits) (*starlark.Dict, Problems) {
	sb := newSandbox(ctx, lim)
	defer sb.close()
	globals, err := prog.Init(sb.thread, predeclared)
	if err != nil {
		return nil, e.runtimeProblems(err, sb)
	}
	fn, ok := globals["stage"].(starlark.Callable)
	if !ok {
		return nil, e.problem(Problem{Line: 1, Col: 1, Message: "stage code must define a function stage(ctx) that returns a dict"})
	}
	ctxValue := newMapValue("ctx", c.tree(), false)
	res, err := starlark.Call(sb.thread, fn, starlark.Tuple{ctxValue}, nil)
	if err != nil {
		return nil, e.runtimeProblems(err, sb)
	}
	d, ok := res.(*starlark.Dict)
	if !ok {
		pos := e.locator().fallback
		return nil, e.problem(Problem{Line: int(pos.Line), Col: int(pos.Col),
			Message: fmt.Sprintf("stage(ctx) must return a dict, got %s", res.Type())})
	}
	return d, nil
}

// problem returns a single problem in this file.
func (e *evaluation) problem(p Problem) Problems {
	p.File = e.file
	return Problems{p}
}

// compileProblems converts syntax and resolve errors.
func (e *evaluation) compileProblems(err error) Problems {
	var se syntax.Error
	if errors.As(err, &se) {
		return e.problem(Problem{Line: int(se.Pos.Line), Col: int(se.Pos.Col), Message: "syntax error: " + se.Msg})
	}
	var rl resolve.ErrorList
	if errors.As(err, &rl) {
		ps := make(Problems, 0, len(rl))
		for _, re := range rl {
			ps = append(ps, Problem{File: e.file, Line: int(re.Pos.Line), Col: int(re.Pos.Col), Message: re.Msg})
		}
		return capProblems(ps)
	}
	return e.problem(Problem{Message: err.Error()})
}

// loadProblems rejects load statements: stage code is a single file.
func (e *evaluation) loadProblems(f *syntax.File) Problems {
	var ps Problems
	for _, st := range f.Stmts {
		if ld, ok := st.(*syntax.LoadStmt); ok {
			ps = append(ps, Problem{File: e.file, Line: int(ld.Load.Line), Col: int(ld.Load.Col),
				Message: "load() is not allowed in stage code"})
		}
	}
	return capProblems(ps)
}

// runtimeProblems converts an evaluation error, located at the innermost
// frame in this file; a stopped sandbox reports why it stopped.
func (e *evaluation) runtimeProblems(err error, sb *sandbox) Problems {
	p := Problem{Message: err.Error()}
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		p.Message = ee.Msg
		for i := len(ee.CallStack) - 1; i >= 0; i-- {
			if pos := ee.CallStack[i].Pos; pos.Filename() == e.file && pos.Line > 0 {
				p.Line, p.Col = int(pos.Line), int(pos.Col)
				break
			}
		}
	}
	if reason := sb.stopReason(); reason != "" {
		p.Message = "evaluation stopped: " + reason
	}
	return e.problem(p)
}

// located turns issues into problems positioned in the source.
func (e *evaluation) located(issues []issue) Problems {
	ps := make(Problems, 0, len(issues))
	for _, is := range issues {
		pos := e.locator().locate(is.path)
		ps = append(ps, Problem{File: e.file, Line: int(pos.Line), Col: int(pos.Col), Key: is.path.String(), Message: is.msg})
	}
	return capProblems(ps)
}
