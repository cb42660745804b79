package schema

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPythonPercentFormatting checks Python's printf-style formatting,
// which Starlark's own % does not fully support.
func TestPythonPercentFormatting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		expr string
		want string
		err  string
	}{
		{name: "string", expr: `"%s-%s" % ("a", 1)`, want: "a-1"},
		{name: "single value", expr: `"v%d" % 7`, want: "v7"},
		{name: "width and left align", expr: `"[%5s|%-5s]" % ("ab", "cd")`, want: "[   ab|cd   ]"},
		{name: "zero padded int", expr: `"%03d" % 7`, want: "007"},
		{name: "int precision", expr: `"%.3d" % 7`, want: "007"},
		{name: "sign flags", expr: `"%+d % d" % (5, 5)`, want: "+5  5"},
		{name: "float precision", expr: `"%.2f" % 3.14159`, want: "3.14"},
		{name: "float width", expr: `"%8.3f|" % 2.5`, want: "   2.500|"},
		{name: "default float precision", expr: `"%f" % 1`, want: "1.000000"},
		{name: "exponent", expr: `"%e" % 12345.678`, want: "1.234568e+04"},
		{name: "general", expr: `"%g %g" % (0.00001, 100000)`, want: "1e-05 100000"},
		{name: "hex and octal", expr: `"%x %X %#x %o %#o" % (255, 255, 255, 8, 8)`, want: "ff FF 0xff 10 0o10"},
		{name: "float truncated by %d", expr: `"%d" % 3.9`, want: "3"},
		{name: "bool as int", expr: `"%d" % True`, want: "1"},
		{name: "char", expr: `"%c%c" % (65, "b")`, want: "Ab"},
		{name: "repr", expr: `"%r" % "q"`, want: `"q"`},
		{name: "string precision", expr: `"%.2s" % "abcdef"`, want: "ab"},
		{name: "star width", expr: `"%*d" % (4, 7)`, want: "   7"},
		{name: "mapping keys", expr: `"%(name)s is %(age)d" % {"name": "x", "age": 3}`, want: "x is 3"},
		{name: "percent literal", expr: `"100%% %s" % "done"`, want: "100% done"},
		{name: "dict as single value", expr: `"%s" % {"a": 1}`, want: `{"a": 1}`},
		{name: "mapping without specifiers", expr: `"plain" % {"a": 1}`, want: "plain"},
		{name: "infinity", expr: `"%f %F" % (float("inf"), float("-inf"))`, want: "inf -INF"},
		{name: "int modulo still works", expr: `str(7 % 3) + str(-7 % 3) + str(7.5 % 2)`, want: "121.5"},
		{name: "augmented assignment", expr: `[s for s in ["%s!"] for s in [s % "hi"]][0]`, want: "hi!"},
		{name: "not enough arguments", expr: `"%s %s" % ("a",)`, err: "not enough arguments for format string"},
		{name: "too many arguments", expr: `"%s" % ("a", "b")`, err: "not all arguments converted during string formatting"},
		{name: "missing key", expr: `"%(x)s" % {"y": 1}`, err: "key not found: x"},
		{name: "not a number", expr: `"%d" % "x"`, err: "%d format: a number is required, not string"},
		{name: "bad conversion", expr: `"%y" % 1`, err: "unsupported format character 'y'"},
		{name: "incomplete", expr: `"abc %" % ()`, err: "incomplete format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code := "def stage(ctx):\n    return {\"parent\": " + tt.expr + "}\n"
			st, err := Eval(context.Background(), "stage.py", []byte(code), Context{}, Limits{})
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "stage.py:2:")
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, st.Parent)
		})
	}
}

func TestPercentAssignment(t *testing.T) {
	t.Parallel()
	code := "def stage(ctx):\n    s = \"%s-%03d\"\n    s %= (\"v\", 5)\n    return {\"parent\": s}\n"
	st, err := Eval(context.Background(), "stage.py", []byte(code), Context{}, Limits{})
	require.NoError(t, err)
	assert.Equal(t, "v-005", st.Parent)
}
