package schema

import (
	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
)

// evalExpr evaluates a Starlark expression (with Python % formatting) over
// env, bounded by exprMaxSteps.
func evalExpr(name, src string, env starlark.StringDict) (starlark.Value, error) {
	opts := fileOptions()
	expr, err := opts.ParseExpr(name, src, 0)
	if err != nil {
		return nil, err
	}
	expr = rewriteExpr(expr)
	var th *starlark.Thread
	th = newThread(name, exprMaxSteps, func(reason string) { th.Cancel(reason) })
	return starlark.EvalExprOptions(opts, th, expr, env)
}

// checkExpr parses and resolves an expression over env without running it.
func checkExpr(name, src string, env starlark.StringDict) error {
	opts := fileOptions()
	expr, err := opts.ParseExpr(name, src, 0)
	if err != nil {
		return err
	}
	expr = rewriteExpr(expr)
	_, err = resolve.ExprOptions(opts, expr, env.Has, starlark.Universe.Has)
	return err
}
