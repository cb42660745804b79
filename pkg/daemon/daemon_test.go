package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/auth"
	"github.com/kraken-go/kk/pkg/engine"
)

func TestOpenStoreURLs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, url, wantErr string
	}{
		{"sqlite absolute", "sqlite://" + filepath.Join(dir, "a", "kk.db"), ""},
		{"no path", "sqlite://", "has no path"},
		{"postgres unreachable", "postgres://u:pw@127.0.0.1:1/kk?connect_timeout=5", "cannot reach PostgreSQL at 127.0.0.1:1"},
		{"unknown scheme", "mysql://x", `unknown scheme "mysql"`},
		{"garbage", "::::", "database URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := OpenStore(context.Background(), tc.url, slog.New(slog.DiscardHandler))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.NoError(t, st.Close())
		})
	}
}

func TestServeBadStorage(t *testing.T) {
	t.Parallel()
	for _, storage := range []string{"gs://bucket", "s3://127.0.0.1:1/bucket?secure=maybe", "file://"} {
		err := Serve(t.Context(), Options{
			Listen: "127.0.0.1:0", DataDir: t.TempDir(), Storage: storage,
			Stdout: io.Discard, Stderr: io.Discard, Logger: slog.New(slog.DiscardHandler),
		})
		require.ErrorContains(t, err, "--storage", storage)
	}
}

func TestBootstrapAndDemo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := OpenStore(ctx, "sqlite://"+filepath.Join(t.TempDir(), "kk.db"), log)
	require.NoError(t, err)
	defer st.Close()

	var out bytes.Buffer
	fresh, pw, err := bootstrapAdmin(ctx, st, Options{Stdout: &out})
	require.NoError(t, err)
	require.True(t, fresh)
	require.NotEmpty(t, pw)
	require.Contains(t, out.String(), pw, "a generated password is printed once")
	u, err := st.GetUserByName(ctx, "admin")
	require.NoError(t, err)
	require.True(t, auth.CheckPassword(u.PasswordHash, pw))
	require.NotContains(t, u.PasswordHash, pw)

	// Second start: nothing printed, nothing created.
	out.Reset()
	fresh, pw, err = bootstrapAdmin(ctx, st, Options{Stdout: &out, AdminPassword: "other"})
	require.NoError(t, err)
	require.False(t, fresh)
	require.Empty(t, pw)
	require.Empty(t, out.String())

	require.NoError(t, createDemo(ctx, st, log))
	p, err := st.GetProjectByName(ctx, demoProject)
	require.NoError(t, err)
	b, err := st.GetBranchByName(ctx, p.ID, demoBranch)
	require.NoError(t, err)
	stages, err := st.ListStages(ctx, b.ID)
	require.NoError(t, err)
	require.Len(t, stages, 2)
	for _, s := range stages {
		sch, err := engine.ParseStageSchema(s)
		require.NoError(t, err)
		require.NotEmpty(t, sch.Jobs, "stage %s", s.Name)
	}
}

func TestHints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		o         Options
		generated string
		want      string
	}{
		{"generated password in the hint", Options{LocalAgent: true}, "abc123", `echo "abc123" | kk login`},
		{"password from env", Options{AdminPassword: "x"}, "", `echo "$KKD_ADMIN_PASSWORD" | kk login`},
		{"later starts", Options{}, "", `echo "PASSWORD" | kk login`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			tc.o.Stdout = &b
			printHints(tc.o, "http://127.0.0.1:6363", tc.generated)
			require.Contains(t, b.String(), tc.want)
			require.Contains(t, b.String(), "kk flow run demo/main --wait")
		})
	}
}

func TestMainUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown flag", []string{"serve", "--nope"}, ExitUsage, "unknown flag"},
		{"bad log level", []string{"serve", "--log-level", "loud", "--data-dir", t.TempDir()}, ExitUsage, "--log-level"},
		{"version", []string{"version"}, ExitOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stderr strings.Builder
			code := Main(context.Background(), tc.args, io.Discard, &stderr, "test")
			require.Equal(t, tc.code, code, stderr.String())
			require.Contains(t, stderr.String(), tc.msg)
		})
	}
}
