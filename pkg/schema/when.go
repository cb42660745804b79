package schema

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"
)

// DefaultWhen is the condition of a step without `when`.
const DefaultWhen = "was_no_error"

// maxWhenLen bounds the length of a when expression.
const maxWhenLen = 4096

// WhenContext is what `when` expressions see.
type WhenContext struct {
	IsCI        bool
	PrevOK      bool // the previous step succeeded (true for the first step)
	WasAnyError bool // some earlier step of the job failed
	Index       int  // index of the step being decided
	Steps       []WhenStep
}

// WhenStep is an earlier (or the current) step as `job.steps[i]` shows it.
type WhenStep struct {
	Index    int
	Status   string
	Duration float64 // seconds
	ExitCode int
}

// whenNames are the names a when expression may use.
var whenNames = [...]string{
	"prev_ok", "always", "never", "was_any_error", "was_no_error",
	"is_ci", "is_dev", "job", "step", "true", "false", "none",
}

// EvalWhen evaluates a step's `when` condition ("" means was_no_error). The
// expression is Starlark (Kraken's Jinja conditions are valid Starlark) over
// prev_ok, always, never, was_any_error, was_no_error, is_ci, is_dev,
// step.index and job.steps[i] with .index, .status and .result.duration /
// .result.retcode, e.g. `was_no_error and is_ci` or
// `job.steps[step.index-1].result.duration > 3`. Jinja's lowercase true,
// false and none are accepted. The result is its truth value.
func EvalWhen(expr string, w WhenContext) (bool, error) {
	expr = normalizeWhen(expr)
	if len(expr) > maxWhenLen {
		return false, fmt.Errorf("when expression is longer than %d bytes", maxWhenLen)
	}
	v, err := evalExpr("when", expr, whenEnv(w))
	if err != nil {
		return false, fmt.Errorf("evaluate when %q: %w", short(expr), err)
	}
	return bool(v.Truth()), nil
}

// ValidateWhen checks a when expression's syntax and names without
// evaluating it.
func ValidateWhen(expr string) error {
	expr = normalizeWhen(expr)
	if len(expr) > maxWhenLen {
		return fmt.Errorf("when expression is longer than %d bytes", maxWhenLen)
	}
	if err := checkExpr("when", expr, whenEnv(WhenContext{})); err != nil {
		return fmt.Errorf("invalid when expression %q: %w (names: %s)", short(expr), err, strings.Join(whenNames[:], ", "))
	}
	return nil
}

func normalizeWhen(expr string) string {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return DefaultWhen
	}
	return expr
}

// whenEnv builds the names of a when expression.
func whenEnv(w WhenContext) starlark.StringDict {
	steps := make([]any, len(w.Steps))
	for i, s := range w.Steps {
		steps[i] = map[string]any{
			"index":  s.Index,
			"status": s.Status,
			"result": map[string]any{"duration": s.Duration, "retcode": s.ExitCode},
		}
	}
	env := sandboxBuiltins()
	names := starlark.StringDict{
		"prev_ok":       starlark.Bool(w.PrevOK),
		"always":        starlark.True,
		"never":         starlark.False,
		"was_any_error": starlark.Bool(w.WasAnyError),
		"was_no_error":  starlark.Bool(!w.WasAnyError),
		"is_ci":         starlark.Bool(w.IsCI),
		"is_dev":        starlark.Bool(!w.IsCI),
		"job":           newMapValue("job", map[string]any{"steps": steps}, false),
		"step":          newMapValue("step", map[string]any{"index": w.Index}, false),
		"true":          starlark.True,
		"false":         starlark.False,
		"none":          starlark.None,
	}
	for k, v := range names {
		env[k] = v
	}
	return env
}
