package cmdutil_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

func TestParseBranchRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    cmdutil.BranchRef
		wantErr bool
	}{
		{in: "demo/main", want: cmdutil.BranchRef{Project: "demo", Branch: "main"}},
		{in: "demo/feature/x", want: cmdutil.BranchRef{Project: "demo", Branch: "feature/x"}},
		{in: "1/2", want: cmdutil.BranchRef{Project: "1", Branch: "2"}},
		{in: "demo", wantErr: true},
		{in: "demo/", wantErr: true},
		{in: "/main", wantErr: true},
		{in: "", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := cmdutil.ParseBranchRef(tc.in)
			if tc.wantErr {
				var ue *cmdutil.UsageError
				require.ErrorAs(t, err, &ue)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.in, got.String())
		})
	}
}

func TestParseKeyValues(t *testing.T) {
	t.Parallel()
	m, err := cmdutil.ParseKeyValues("--arg", []string{"a=1", "b=x=y", "c=", "a=2"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "2", "b": "x=y", "c": ""}, m)
	m, err = cmdutil.ParseKeyValues("--arg", nil)
	require.NoError(t, err)
	assert.Nil(t, m)
	for _, bad := range []string{"a", "=1", " =1"} {
		_, err := cmdutil.ParseKeyValues("--arg", []string{bad})
		assert.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCodeOf(err), bad)
	}
}

func TestParseID(t *testing.T) {
	t.Parallel()
	id, err := cmdutil.ParseID("flow", "42", "hint")
	require.NoError(t, err)
	assert.EqualValues(t, 42, id)
	for _, bad := range []string{"", "0", "-1", "x", "1.5"} {
		_, err := cmdutil.ParseID("flow", bad, "see `kk flow list`")
		assert.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCodeOf(err), bad)
		assert.ErrorContains(t, err, "see `kk flow list`")
	}
}

func TestExitCodeOf(t *testing.T) {
	t.Parallel()
	assert.Equal(t, cmdutil.ExitOK, cmdutil.ExitCodeOf(nil))
	assert.Equal(t, cmdutil.ExitError, cmdutil.ExitCodeOf(errors.New("x")))
	assert.Equal(t, cmdutil.ExitError, cmdutil.ExitCodeOf(cmdutil.ErrSilent))
	assert.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCodeOf(fmt.Errorf("wrapped: %w", cmdutil.UsageErrorf("bad"))))
	assert.Equal(t, cmdutil.ExitInterrupted, cmdutil.ExitCodeOf(fmt.Errorf("x: %w", context.Canceled)))
}
