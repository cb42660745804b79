package stagerepo_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/secrets"
	"github.com/kraken-go/kk/pkg/stagerepo"
	"github.com/kraken-go/kk/pkg/store"
)

// TestGitFetchToken serves a repository over smart HTTP (git http-backend)
// behind basic auth and fetches it with and without the token.
func TestGitFetchToken(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	require.NoError(t, err, "the git CLI serves the repository")
	g := newGitRepo(t)
	sha := g.commit("ci/build.py", "code")
	const token = "s3cr3t-token"
	backend := &cgi.Handler{
		Path: gitBin, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(g.dir), "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); !ok || pass != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	defer srv.Close()
	url := srv.URL + "/" + filepath.Base(g.dir)

	got, err := stagerepo.GitFetch(t.Context(), stagerepo.Source{URL: url, Branch: "main", Path: "ci/build.py", Token: token})
	require.NoError(t, err)
	require.Equal(t, "code", string(got.Code))
	require.Equal(t, sha, got.Version)

	_, err = stagerepo.GitFetch(t.Context(), stagerepo.Source{URL: url, Branch: "main", Path: "ci/build.py", Token: "bad-token-xyz"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "bad-token-xyz", "the token is not in the message")
	_, err = stagerepo.GitFetch(t.Context(), stagerepo.Source{URL: url, Branch: "main", Path: "ci/build.py"})
	require.ErrorContains(t, err, "authentication required")

	// Through a Loader: the token is a simple project secret.
	f := newFixture(t)
	cipher, err := secrets.New(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	loader := stagerepo.New(stagerepo.Config{Store: f.st, Engine: engine.New(engine.Config{Store: f.st, Logger: slog.New(slog.DiscardHandler)}),
		Secrets: cipher, Logger: slog.New(slog.DiscardHandler)})
	put := func(name, kind string, v api.SecretValue) {
		plain, err := json.Marshal(v)
		require.NoError(t, err)
		sealed, err := cipher.Seal(f.branch.ProjectID, name, plain)
		require.NoError(t, err)
		_, err = f.st.PutSecret(f.ctx, &store.Secret{ProjectID: f.branch.ProjectID, Name: name, Kind: kind, Sealed: sealed})
		require.NoError(t, err)
	}
	put("tok", api.SecretSimple, api.SecretValue{Kind: api.SecretSimple, Value: token})
	put("key", api.SecretSSHKey, api.SecretValue{Kind: api.SecretSSHKey, Username: "git", Key: "k"})
	g.commit("ci/build.py", stageCode("via-token"))
	p, err := f.st.GetProject(f.ctx, f.branch.ProjectID)
	require.NoError(t, err)
	loaded, err := loader.Load(f.ctx, p, f.branch, "build", ci.StageRepo{URL: url, Branch: "main", Path: "ci/build.py", TokenSecret: "tok"})
	require.NoError(t, err)
	require.Contains(t, loaded.Code, "via-token")
	_, err = loader.Load(f.ctx, p, f.branch, "build", ci.StageRepo{URL: url, Branch: "main", Path: "ci/build.py", TokenSecret: "key"})
	require.ErrorContains(t, err, "must be a simple secret")
	_, err = loader.Load(f.ctx, p, f.branch, "build", ci.StageRepo{URL: url, Branch: "main", Path: "ci/build.py", TokenSecret: "none"})
	require.ErrorContains(t, err, "`kk secret create proj none`")
}
