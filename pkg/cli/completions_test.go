package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/cli/completion"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/root"
)

// completionsDir is ../../completions relative to this file.
func completionsDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..", "completions")
}

// TestCompletionsUpToDate fails when the command tree changed but the
// generated completion scripts were not regenerated.
func TestCompletionsUpToDate(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			t.Parallel()
			ios, _, _, _ := iostreams.Test()
			f := &factory.Factory{
				IOStreams: ios,
				Getenv:    func(string) string { return "" },
				HomeDir:   func() (string, error) { return t.TempDir(), nil },
			}
			var got bytes.Buffer
			require.NoError(t, completion.Generate(root.NewCmdRoot(f), shell, &got))
			want, err := os.ReadFile(filepath.Join(completionsDir(t), "kk."+shell))
			require.NoError(t, err, "completions drifted: run `make completions`")
			if !bytes.Equal(want, got.Bytes()) {
				t.Fatalf("completions drifted: run `make completions` (completions/kk.%s differs from `kk completion %s`)", shell, shell)
			}
		})
	}
}
