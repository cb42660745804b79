package schema

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
	kkschema "github.com/kraken-go/kk/pkg/schema"
)

// TestCheckEvaluatesAgainWithDefaults checks the two evaluations: the first
// with the given args only, the second with parameter defaults filled in.
func TestCheckEvaluatesAgainWithDefaults(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "s.star")
	require.NoError(t, os.WriteFile(file, []byte("code"), 0o600))
	var seen []kkschema.Context
	ios, _, out, _ := iostreams.Test()
	opts := &CheckOptions{
		IO: ios, Format: output.Table, File: file, Dev: true,
		Args: map[string]string{"a": "given"},
		Eval: func(_ context.Context, filename string, code []byte, c kkschema.Context, _ kkschema.Limits) (*kkschema.Stage, error) {
			assert.Equal(t, file, filename)
			assert.Equal(t, "code", string(code))
			seen = append(seen, c)
			return &kkschema.Stage{Parent: "root", Parameters: []kkschema.Parameter{
				{Name: "a", Default: "default-a"}, {Name: "b", Default: "default-b"},
			}}, nil
		},
	}
	require.NoError(t, checkRun(t.Context(), opts))
	require.Len(t, seen, 2)
	assert.Equal(t, map[string]string{"a": "given"}, seen[0].Args)
	assert.Equal(t, map[string]string{"a": "given", "b": "default-b"}, seen[1].Args)
	assert.False(t, seen[1].IsCI)
	assert.Equal(t, "DEV", seen[1].Flow.Kind)
	assert.Equal(t, "s", seen[1].Stage)
	assert.Contains(t, out.String(), `"parent": "root"`)
}
