package schema

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEvalWhen(t *testing.T) {
	t.Parallel()
	steps := []WhenStep{
		{Index: 0, Status: "done", Duration: 5.5, ExitCode: 0},
		{Index: 1, Status: "error", Duration: 1, ExitCode: 2},
	}
	ok := WhenContext{IsCI: true, PrevOK: true, Index: 2, Steps: steps}
	failed := WhenContext{IsCI: false, PrevOK: false, WasAnyError: true, Index: 2, Steps: steps}
	tests := []struct {
		name string
		expr string
		w    WhenContext
		want bool
		err  string
	}{
		{name: "empty means was_no_error", expr: "", w: ok, want: true},
		{name: "empty after an error", expr: "  ", w: failed, want: false},
		{name: "always", expr: "always", w: failed, want: true},
		{name: "never", expr: "never", w: ok, want: false},
		{name: "was_any_error", expr: "was_any_error", w: failed, want: true},
		{name: "was_no_error and is_ci", expr: "was_no_error and is_ci", w: ok, want: true},
		{name: "was_no_error and is_ci on dev", expr: "was_no_error and is_ci", w: WhenContext{PrevOK: true}, want: false},
		{name: "not is_ci", expr: "not is_ci", w: failed, want: true},
		{name: "is_dev", expr: "is_dev", w: ok, want: false},
		{name: "prev_ok", expr: "prev_ok", w: failed, want: false},
		{name: "duration of previous step", expr: "job.steps[step.index-1].result.duration > 3", w: WhenContext{Index: 1, Steps: steps}, want: true},
		{name: "retcode", expr: "job.steps[1].result.retcode == 2", w: ok, want: true},
		{name: "status", expr: "job.steps[0].status == 'done'", w: ok, want: true},
		{name: "jinja lowercase", expr: "is_ci == true", w: ok, want: true},
		{name: "truthiness of non-bool", expr: "len(job.steps)", w: ok, want: true},
		{name: "truthiness of empty string", expr: "''", w: ok, want: false},
		{name: "unknown name", expr: "was_no_eror", w: ok, err: "undefined: was_no_eror"},
		{name: "syntax error", expr: "was_no_error and", w: ok, err: "got end of file"},
		{name: "index out of range", expr: "job.steps[5].status", w: ok, err: "index 5 out of range"},
		{name: "unknown step field", expr: "job.steps[0].exit", w: ok, err: `job.steps[0] has no field "exit"`},
		{name: "runaway", expr: "[i for i in range(1000000)]", w: ok, err: "step limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := EvalWhen(tt.expr, tt.w)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestValidateWhen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		err  string
	}{
		{expr: ""},
		{expr: "always"},
		{expr: "was_no_error and is_ci"},
		{expr: "not is_ci"},
		{expr: "job.steps[step.index-1].result.duration > 3"},
		{expr: "was_any_error or never"},
		{expr: "is_ci and", err: "invalid when expression"},
		{expr: "foo", err: "undefined: foo"},
		{expr: "x = 1", err: "invalid when expression"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()
			err := ValidateWhen(tt.expr)
			if tt.err == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
		})
	}
}
