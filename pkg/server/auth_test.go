package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/auth"
	"github.com/kraken-go/kk/pkg/blob"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/retention"
	"github.com/kraken-go/kk/pkg/server"
)

// route is one documented API route with its path parameters filled in.
type route struct {
	method string
	path   string // without api.Prefix
}

func (r route) String() string { return r.method + " " + r.path }

func (r route) public() bool {
	return r.path == "/login" || r.path == "/agent/register"
}

func (r route) agent() bool { return strings.HasPrefix(r.path, "/agent/") && !r.public() }

func (r route) user() bool { return !r.public() && !r.agent() }

// pathParams fill in the route placeholders; they name the objects the route
// fixture creates (see routeFixture).
func pathParams(jobID int64, agent, group string) *strings.Replacer {
	return strings.NewReplacer("{p}", "proj", "{b}", "main", "{a}", agent, "{g}", group,
		"{id}", fmt.Sprint(jobID), "{name}", "build", "{idx}", "0")
}

var docRoute = regexp.MustCompile(`^//\s+(GET|POST|PUT|DELETE)\s+` + regexp.QuoteMeta(api.Prefix) + `(/\S*)`)

// documentedRoutes reads the route table from the package comment of pkg/api,
// the one place routes are documented, and expands a|b alternatives.
func documentedRoutes(t testing.TB, params *strings.Replacer) []route {
	t.Helper()
	f, err := os.Open("../api/api.go")
	require.NoError(t, err)
	defer f.Close()
	var out []route
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := docRoute.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		path, _, _ := strings.Cut(m[2], "?")
		segs := strings.Split(path, "/")
		last := segs[len(segs)-1]
		for alt := range strings.SplitSeq(last, "|") {
			segs[len(segs)-1] = alt
			out = append(out, route{method: m[1], path: params.Replace(strings.Join(segs, "/"))})
		}
	}
	require.NoError(t, sc.Err())
	// 38 user and public routes and 6 agent routes when this test was written;
	// fewer means the parser no longer understands the table.
	require.GreaterOrEqual(t, len(out), 44, "routes parsed from pkg/api: %v", out)
	return out
}

// routeFixture creates objects every route can name: project proj, branch
// main, stage build, a flow with job jobID, agent and group.
type routeEnv struct {
	*env
	jobID  int64
	agent  testAgent
	routes []route
}

func newRouteEnv(t *testing.T) routeEnv {
	blobs, err := blob.OpenDir(t.TempDir())
	require.NoError(t, err)
	e := newEnv(t, func(c *server.Config) {
		c.Retention = retention.New(retention.Config{Store: c.Store, Blobs: blobs, Logger: c.Logger})
	})
	fx := e.fixture(t, 1)
	j := e.queueJob(t, fx)
	a := e.agent(t, "builder")
	e.user(t, "POST", "/groups", api.CreateGroup{Name: "grp"}).ok(t, http.StatusCreated, nil)
	return routeEnv{env: e, jobID: j.ID, agent: a, routes: documentedRoutes(t, pathParams(j.ID, a.name, "grp"))}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name     string
		body     any
		status   int
		code     string
		contains string
	}{
		{name: "right password", body: api.LoginRequest{User: "admin", Password: adminPassword}, status: http.StatusOK},
		{name: "wrong password", body: api.LoginRequest{User: "admin", Password: "nope"}, status: http.StatusUnauthorized, code: api.CodeUnauthorized, contains: "wrong user name or password"},
		{name: "unknown user", body: api.LoginRequest{User: "ghost", Password: adminPassword}, status: http.StatusUnauthorized, code: api.CodeUnauthorized, contains: "wrong user name or password"},
		{name: "empty password", body: api.LoginRequest{User: "admin"}, status: http.StatusUnauthorized, code: api.CodeUnauthorized},
		{name: "empty body", body: "", status: http.StatusBadRequest, code: api.CodeBadRequest, contains: "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.call(t, "POST", "/login", tc.body, "")
			if tc.code != "" {
				ae := r.envelope(t, tc.status, tc.code)
				require.Contains(t, ae.Message, tc.contains)
				return
			}
			var lr api.LoginResponse
			r.ok(t, tc.status, &lr)
			require.True(t, strings.HasPrefix(lr.Token, "kkt_"), lr.Token)
			require.Equal(t, api.User{ID: e.adminID, Name: "admin", Admin: true}, lr.User)

			var who api.User
			e.call(t, "GET", "/whoami", nil, lr.Token).ok(t, http.StatusOK, &who)
			require.Equal(t, "admin", who.Name)

			// The store holds only the token's hash: the raw token finds nothing.
			ctx := context.Background()
			_, _, err := e.st.GetToken(ctx, lr.Token, e.now())
			require.ErrorIs(t, err, ci.ErrNotFound)
			tok, u, err := e.st.GetToken(ctx, auth.HashToken(lr.Token), e.now())
			require.NoError(t, err)
			require.Equal(t, e.adminID, u.ID)
			require.NotEqual(t, lr.Token, tok.Hash)
			require.NotContains(t, tok.Hash, strings.TrimPrefix(lr.Token, "kkt_"))
		})
	}
}

func TestUserRoutesNeedToken(t *testing.T) {
	t.Parallel()
	re := newRouteEnv(t)
	headers := []struct {
		name  string
		value string
	}{
		{name: "no header"},
		{name: "wrong token", value: "Bearer kkt_" + strings.Repeat("0", 48)},
		{name: "empty bearer", value: "Bearer "},
		{name: "basic auth", value: "Basic YWRtaW46cGFzcw=="},
		{name: "raw token without scheme", value: re.token},
		{name: "agent credential", value: "Bearer " + re.agent.cred},
	}
	before := re.snapshot(t)
	n := 0
	t.Run("routes", func(t *testing.T) {
		for _, rt := range re.routes {
			if !rt.user() {
				continue
			}
			n++
			for _, h := range headers {
				t.Run(rt.String()+"/"+h.name, func(t *testing.T) {
					t.Parallel()
					req := request(t, rt.method, re.base+rt.path, "{}", "")
					if h.value != "" {
						req.Header.Set("Authorization", h.value)
					}
					resp, err := http.DefaultClient.Do(req)
					require.NoError(t, err)
					defer resp.Body.Close()
					r := readResponse(t, resp)
					r.envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
				})
			}
		}
	})
	require.GreaterOrEqual(t, n, 36, "user routes")
	re.unchanged(t, before)
}

func TestAgentRoutesNeedCredential(t *testing.T) {
	t.Parallel()
	re := newRouteEnv(t)
	// A discovered (not yet authorized) agent has no credential to present;
	// the user's API token is not an agent credential.
	tokens := []struct{ name, value string }{
		{name: "no credential"},
		{name: "wrong credential", value: "kka_" + strings.Repeat("f", 48)},
		{name: "user API token", value: re.token},
	}
	before := re.snapshot(t)
	n := 0
	for _, rt := range re.routes {
		if !rt.agent() {
			continue
		}
		n++
		for _, tok := range tokens {
			t.Run(rt.String()+"/"+tok.name, func(t *testing.T) {
				re.call(t, rt.method, rt.path, `{"attempt": 1, "result": "ok", "status": "ok"}`, tok.value).
					envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
			})
		}
	}
	require.Equal(t, 6, n, "agent routes")
	re.unchanged(t, before)
}

// TestDocumentedRoutesAreServed catches drift between pkg/api's route table
// and the server: no documented route may fall through to the catch-all.
func TestDocumentedRoutesAreServed(t *testing.T) {
	t.Parallel()
	re := newRouteEnv(t)
	for _, rt := range re.routes {
		t.Run(rt.String(), func(t *testing.T) {
			tok := re.token
			if rt.agent() {
				tok = re.agent.cred
			}
			r := re.call(t, rt.method, rt.path, nil, tok)
			require.Less(t, r.status, 500, "body: %s", r.body)
			if r.status == http.StatusNotFound {
				ae := requireEnvelope(t, r.status, r.body, api.CodeNotFound)
				require.NotContains(t, ae.Message, "no route", "documented route is not served")
			}
		})
	}
}

func TestUnknownRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct{ name, method, path string }{
		{name: "unknown path", method: "GET", path: "/nothing"},
		{name: "wrong method", method: "PATCH", path: "/projects"},
		{name: "trailing slash", method: "GET", path: "/projects/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ae := e.user(t, tc.method, tc.path, nil).envelope(t, http.StatusNotFound, api.CodeNotFound)
			require.Contains(t, ae.Message, tc.path)
		})
	}
}

func TestAgentCredentialStoredHashed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent(t, "builder")
	ctx := context.Background()
	_, err := e.st.GetAgentByCredential(ctx, a.cred)
	require.True(t, errors.Is(err, ci.ErrNotFound), "raw credential must not be stored: %v", err)
	got, err := e.st.GetAgentByCredential(ctx, auth.HashToken(a.cred))
	require.NoError(t, err)
	require.Equal(t, a.id, got.ID)
	require.NotEqual(t, a.cred, got.CredentialHash)
	require.NotEqual(t, a.secret, got.EnrollHash, "enroll secret must be stored hashed")

	// A deleted agent's credential no longer works.
	e.call(t, "POST", "/agent/work", nil, a.cred).ok(t, http.StatusNoContent, nil)
	e.user(t, "DELETE", "/agents/builder", nil).ok(t, http.StatusNoContent, nil)
	e.call(t, "POST", "/agent/work", nil, a.cred).envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
}
