package artifacts_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/cli/artifacts"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

const content = "artifact bytes\n"

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func fakeAPI(t *testing.T) *clitest.API {
	a := clitest.NewAPI(t)
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	art := api.Artifact{ID: 56, FlowID: 12, RunID: 34, JobID: 78, Stage: "build", Path: "dist/app.txt",
		Size: int64(len(content)), SHA256: sum(content), Created: created}
	report := api.Artifact{ID: 57, FlowID: 12, RunID: 34, JobID: 78, Stage: "build", Path: "report/index.html",
		Size: 2048, SHA256: sum("x"), Public: true, ReportEntry: true, Created: created, URL: "http://kkd/public/artifacts/57/report/index.html"}
	a.Reply("GET /api/v1/flows/12/artifacts", 200, []api.Artifact{art, report})
	a.Reply("GET /api/v1/runs/34/artifacts", 200, []api.Artifact{art})
	a.Reply("GET /api/v1/flows/13/artifacts", 200, []api.Artifact{})
	a.Reply("GET /api/v1/artifacts/56", 200, art)
	a.Handle("GET /api/v1/artifacts/56/content", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write([]byte(content))
	})
	bad := art
	bad.ID, bad.SHA256 = 58, sum("other")
	a.Reply("GET /api/v1/artifacts/58", 200, bad)
	a.Handle("GET /api/v1/artifacts/58/content", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(content))
	})
	return a
}

func TestParseRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want artifacts.Ref
		err  string
	}{
		{in: "12", want: artifacts.Ref{Scope: artifacts.ScopeFlow, ID: 12}},
		{in: "flow/12", want: artifacts.Ref{Scope: artifacts.ScopeFlow, ID: 12}},
		{in: "run/34", want: artifacts.Ref{Scope: artifacts.ScopeRun, ID: 34}},
		{in: "job/3", err: `invalid reference "job/3"`},
		{in: "run/x", err: `invalid run id "x"`},
		{in: "0", err: "invalid flow id"},
		{in: "proj/main", err: `invalid reference "proj/main"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := artifacts.ParseRef(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCodeOf(err))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	tests := []struct {
		name, args string
		check      func(t *testing.T, res clitest.Result)
	}{
		{"flow table", "artifacts list 12", func(t *testing.T, res clitest.Result) {
			assert.Contains(t, res.Stdout, "ID  RUN  STAGE  JOB  PATH               SIZE     PUBLIC  CREATED\n")
			assert.Contains(t, res.Stdout, "56  34   build  78   dist/app.txt       15 B")
			assert.Contains(t, res.Stdout, "57  34   build  78   report/index.html  2.0 KiB  report")
		}},
		{"run json", "artifacts list run/34 -o json", func(t *testing.T, res clitest.Result) {
			var got []map[string]any
			require.NoError(t, json.Unmarshal([]byte(res.Stdout), &got))
			require.Len(t, got, 1)
			assert.EqualValues(t, 56, got[0]["id"])
			assert.Equal(t, "dist/app.txt", got[0]["path"])
			assert.Equal(t, sum(content), got[0]["sha256"])
		}},
		{"empty json", "artifacts list flow/13 -o json", func(t *testing.T, res clitest.Result) {
			assert.Equal(t, "[]\n", res.Stdout)
		}},
		{"empty table", "artifacts list flow/13", func(t *testing.T, res clitest.Result) {
			assert.Empty(t, res.Stdout)
			assert.Contains(t, res.Stderr, "no artifacts in flow 13")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := clitest.NewEnv(t, a).Run(t, clitest.Args(tc.args)...)
			require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
			tc.check(t, res)
		})
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range []string{"artifacts list", "artifacts list job/1", "artifacts get", "artifacts get abc", "artifacts"} {
		t.Run(args, func(t *testing.T) {
			res := clitest.NewEnv(t, nil).Run(t, clitest.Args(args)...)
			require.Equal(t, cmdutil.ExitUsage, res.Code, res.Stderr)
		})
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	a := fakeAPI(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "app.txt")

	res := clitest.NewEnv(t, a).Run(t, "artifacts", "get", "56", "-O", out)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, content, string(b))
	require.Contains(t, res.Stderr, "saved artifact 56 (dist/app.txt")

	t.Run("refuses to overwrite", func(t *testing.T) {
		require.NoError(t, os.WriteFile(out, []byte("mine"), 0o644))
		res := clitest.NewEnv(t, a).Run(t, "artifacts", "get", "56", "-O", out)
		require.Equal(t, cmdutil.ExitError, res.Code)
		require.Contains(t, res.Stderr, "--force")
		b, _ := os.ReadFile(out)
		require.Equal(t, "mine", string(b))
		res = clitest.NewEnv(t, a).Run(t, "artifacts", "get", "56", "-O", out, "--force")
		require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
		b, _ = os.ReadFile(out)
		require.Equal(t, content, string(b))
	})
	t.Run("into a directory", func(t *testing.T) {
		sub := t.TempDir()
		res := clitest.NewEnv(t, a).Run(t, "artifacts", "get", "56", "-O", sub)
		require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
		b, err := os.ReadFile(filepath.Join(sub, "app.txt"))
		require.NoError(t, err)
		require.Equal(t, content, string(b))
	})
	t.Run("stdout", func(t *testing.T) {
		res := clitest.NewEnv(t, a).Run(t, "artifacts", "get", "56", "-O", "-")
		require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
		require.Equal(t, content, res.Stdout)
	})
	t.Run("checksum mismatch leaves no file", func(t *testing.T) {
		sub := t.TempDir()
		res := clitest.NewEnv(t, a).Run(t, "artifacts", "get", "58", "-O", filepath.Join(sub, "x"))
		require.Equal(t, cmdutil.ExitError, res.Code)
		require.Contains(t, res.Stderr, "sha256")
		entries, err := os.ReadDir(sub)
		require.NoError(t, err)
		require.Empty(t, entries)
	})
	t.Run("missing artifact", func(t *testing.T) {
		a.Handle("GET /api/v1/artifacts/99", func(w http.ResponseWriter, r *http.Request) {
			clitest.Error(w, http.StatusNotFound, api.CodeNotFound, "artifact 99 does not exist: list them with `kk artifacts list FLOW`")
		})
		res := clitest.NewEnv(t, a).Run(t, "artifacts", "get", "99", "-O", filepath.Join(t.TempDir(), "x"))
		require.Equal(t, cmdutil.ExitError, res.Code)
		require.Contains(t, res.Stderr, "artifact 99")
	})
}

// TestGetDefaultName saves into the current directory under the artifact's
// base name (not parallel: it changes the directory).
func TestGetDefaultName(t *testing.T) {
	a := fakeAPI(t)
	t.Chdir(t.TempDir())
	res := clitest.NewEnv(t, a).Run(t, "artifacts", "get", "56")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	b, err := os.ReadFile("app.txt")
	require.NoError(t, err)
	require.Equal(t, content, string(b))
}

func TestSize(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 20 << 20: "20.0 MiB", 3 << 30: "3.0 GiB"} {
		require.Equal(t, want, artifacts.Size(n), "%d", n)
	}
}
