package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// Helpers shared by the tools.

// badParams is the result of a step whose parameters are wrong.
func badParams(tool string, err error) Result {
	return Result{Status: ci.StepError, Reason: ReasonBadParameters, Message: tool + ": " + err.Error()}
}

// stepFailed is the result of a step whose work failed (no command exit code).
func stepFailed(tool, msg string) Result {
	return Result{Status: ci.StepFailed, Message: tool + ": " + msg}
}

// stepError is the result of a step that could not do its work; a context
// that ended turns it into the timeout or cancel result.
func stepError(ctx context.Context, tool string, err error) Result {
	if r, ok := interrupted(ctx); ok {
		return r
	}
	return Result{Status: ci.StepError, Reason: ReasonExecError, Message: tool + ": " + err.Error()}
}

// interrupted tells whether ctx (the job's context, maybe with the step's
// timeout) ended, and the matching result.
func interrupted(ctx context.Context) (Result, bool) {
	switch {
	case ctx.Err() == nil:
		return Result{}, false
	case errors.Is(context.Cause(ctx), errStepTimeout):
		return Result{Status: ci.StepTimeout, Reason: ReasonStepTimeout, Message: context.Cause(ctx).Error()}, true
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return Result{Status: ci.StepTimeout, Reason: ReasonJobTimeout, Message: "job timed out"}, true
	}
	return Result{Status: ci.StepCancelled, Reason: ReasonCancelled, Message: "cancelled"}, true
}

// errStepTimeout is the cause of a step context ended by the step's timeout.
var errStepTimeout = errors.New("step timed out")

// stepTimeout returns ctx bounded by the step's timeout parameter (when set).
func stepTimeout(ctx context.Context, fields map[string]any) (context.Context, context.CancelFunc, error) {
	d, ok, err := Seconds(fields, "timeout")
	if err != nil || !ok || d <= 0 {
		return ctx, func() {}, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, d, fmt.Errorf("%w after %s", errStepTimeout, d))
	return ctx, cancel, nil
}

// StringList returns fields[key], a string or a list of strings; a missing key
// gives nil.
func StringList(fields map[string]any, key string) ([]string, error) {
	v, present := fields[key]
	if !present || v == nil {
		return nil, nil
	}
	switch x := v.(type) {
	case string:
		if strings.TrimSpace(x) == "" {
			return nil, nil
		}
		return []string{x}, nil
	case []string:
		return x, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s[%d]: want a string, got %T", key, i, e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: want a string or a list of strings, got %T", key, v)
}

// cred returns the credential named by the step parameter param.
func (st Step) cred(param, name string) (api.SecretValue, error) {
	c, ok := st.Creds[name]
	if !ok {
		return api.SecretValue{}, fmt.Errorf("%s: secret %q was not handed to this job: create it in the project's secrets (kk secret set) or fix the name", param, name)
	}
	return c, nil
}

// needServices fails when the step has no connection to kkd.
func (st Step) needServices(tool string) error {
	if st.Services == nil {
		return fmt.Errorf("%s needs kkd's services, which this agent does not provide to the step", tool)
	}
	return nil
}

// workspaceDirs resolves the workspace and the step's cwd parameter.
func workspaceDirs(ws Workspace, fields map[string]any) (string, error) {
	cwd, _, err := String(fields, "cwd")
	if err != nil {
		return "", err
	}
	return ws.Cwd(cwd)
}
