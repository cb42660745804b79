package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/client"
)

type recorded struct {
	method, path, query, auth, body string
}

// recorder answers every request with status and body and records it.
func recorder(t *testing.T, status int, body string) (*httptest.Server, *recorded) {
	t.Helper()
	rec := &recorded{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*rec = recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), string(b)}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	step := 2
	enabled := false
	cases := []struct {
		name   string
		status int
		answer string
		call   func(context.Context, *client.Client) error
		want   recorded // auth is not compared here
	}{
		{"login", 200, `{"token":"t"}`, func(ctx context.Context, c *client.Client) error {
			r, err := c.Login(ctx, "admin", "pw")
			if err == nil && r.Token != "t" {
				err = errors.New("token not decoded")
			}
			return err
		}, recorded{method: "POST", path: "/api/v1/login", body: `{"user":"admin","password":"pw"}`}},
		{"whoami", 200, `{"id":1}`, func(ctx context.Context, c *client.Client) error { _, err := c.Whoami(ctx); return err },
			recorded{method: "GET", path: "/api/v1/whoami"}},
		{"list projects", 200, `[]`, func(ctx context.Context, c *client.Client) error { _, err := c.ListProjects(ctx); return err },
			recorded{method: "GET", path: "/api/v1/projects"}},
		{"create project", 201, `{"id":1}`, func(ctx context.Context, c *client.Client) error {
			_, err := c.CreateProject(ctx, api.CreateProject{Name: "p"})
			return err
		}, recorded{method: "POST", path: "/api/v1/projects", body: `{"name":"p"}`}},
		{"get project", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.GetProject(ctx, "a b"); return err },
			recorded{method: "GET", path: "/api/v1/projects/a%20b"}},
		{"delete project", 204, ``, func(ctx context.Context, c *client.Client) error { return c.DeleteProject(ctx, "p") },
			recorded{method: "DELETE", path: "/api/v1/projects/p"}},
		{"list branches", 200, `[]`, func(ctx context.Context, c *client.Client) error { _, err := c.ListBranches(ctx, "p"); return err },
			recorded{method: "GET", path: "/api/v1/projects/p/branches"}},
		{"create branch", 201, `{}`, func(ctx context.Context, c *client.Client) error {
			_, err := c.CreateBranch(ctx, "p", api.CreateBranch{Name: "feature/x", RepoBranch: "fx"})
			return err
		}, recorded{method: "POST", path: "/api/v1/projects/p/branches", body: `{"name":"feature/x","repo_branch":"fx"}`}},
		{"get branch with slash", 200, `{}`, func(ctx context.Context, c *client.Client) error {
			_, err := c.GetBranch(ctx, "p", "feature/x")
			return err
		}, recorded{method: "GET", path: "/api/v1/projects/p/branches/feature%2Fx"}},
		{"delete branch", 204, ``, func(ctx context.Context, c *client.Client) error { return c.DeleteBranch(ctx, "p", "feature/x") },
			recorded{method: "DELETE", path: "/api/v1/projects/p/branches/feature%2Fx"}},
		{"list stages", 200, `[]`, func(ctx context.Context, c *client.Client) error { _, err := c.ListStages(ctx, 7); return err },
			recorded{method: "GET", path: "/api/v1/branches/7/stages"}},
		{"put stage", 200, `{}`, func(ctx context.Context, c *client.Client) error {
			_, err := c.PutStage(ctx, 7, "unit tests", api.PutStage{Code: "x", Enabled: &enabled})
			return err
		}, recorded{method: "PUT", path: "/api/v1/branches/7/stages/unit%20tests", body: `{"code":"x","enabled":false}`}},
		{"get stage", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.GetStage(ctx, 3); return err },
			recorded{method: "GET", path: "/api/v1/stages/3"}},
		{"delete stage", 204, ``, func(ctx context.Context, c *client.Client) error { return c.DeleteStage(ctx, 3) },
			recorded{method: "DELETE", path: "/api/v1/stages/3"}},
		{"schema check", 200, `{"parent":"root"}`, func(ctx context.Context, c *client.Client) error {
			_, err := c.SchemaCheck(ctx, api.SchemaCheck{Code: "c", Dev: true})
			return err
		}, recorded{method: "POST", path: "/api/v1/schema/check", body: `{"code":"c","dev":true}`}},
		{"create flow", 201, `{"id":9}`, func(ctx context.Context, c *client.Client) error {
			_, err := c.CreateFlow(ctx, 7, api.CreateFlow{Kind: ci.FlowDEV, Args: map[string]string{"a": "b"}})
			return err
		}, recorded{method: "POST", path: "/api/v1/branches/7/flows", body: `{"kind":"dev","args":{"a":"b"}}`}},
		{"list flows", 200, `[]`, func(ctx context.Context, c *client.Client) error {
			_, err := c.ListFlows(ctx, 7, ci.FlowCI, 5)
			return err
		},
			recorded{method: "GET", path: "/api/v1/branches/7/flows", query: "kind=ci&limit=5"}},
		{"list flows no filter", 200, `[]`, func(ctx context.Context, c *client.Client) error { _, err := c.ListFlows(ctx, 7, "", 0); return err },
			recorded{method: "GET", path: "/api/v1/branches/7/flows"}},
		{"get flow", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.GetFlow(ctx, 9); return err },
			recorded{method: "GET", path: "/api/v1/flows/9"}},
		{"get run", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.GetRun(ctx, 4); return err },
			recorded{method: "GET", path: "/api/v1/runs/4"}},
		{"start run", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.StartRun(ctx, 4); return err },
			recorded{method: "POST", path: "/api/v1/runs/4/start"}},
		{"cancel run", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.CancelRun(ctx, 4); return err },
			recorded{method: "POST", path: "/api/v1/runs/4/cancel"}},
		{"rerun run", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.RerunRun(ctx, 4); return err },
			recorded{method: "POST", path: "/api/v1/runs/4/rerun"}},
		{"get job", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.GetJob(ctx, 5); return err },
			recorded{method: "GET", path: "/api/v1/jobs/5"}},
		{"cancel job", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.CancelJob(ctx, 5); return err },
			recorded{method: "POST", path: "/api/v1/jobs/5/cancel"}},
		{"rerun job", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.RerunJob(ctx, 5); return err },
			recorded{method: "POST", path: "/api/v1/jobs/5/rerun"}},
		{"logs", 200, `x`, func(ctx context.Context, c *client.Client) error {
			rc, err := c.Logs(ctx, 5, &step, true)
			if err == nil {
				err = rc.Close()
			}
			return err
		}, recorded{method: "GET", path: "/api/v1/jobs/5/logs", query: "follow=1&step=2"}},
		{"list agents", 200, `[]`, func(ctx context.Context, c *client.Client) error { _, err := c.ListAgents(ctx, false); return err },
			recorded{method: "GET", path: "/api/v1/agents", query: "discovered=0"}},
		{"list discovered agents", 200, `[]`, func(ctx context.Context, c *client.Client) error { _, err := c.ListAgents(ctx, true); return err },
			recorded{method: "GET", path: "/api/v1/agents", query: "discovered=1"}},
		{"get agent", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.GetAgent(ctx, "host-1"); return err },
			recorded{method: "GET", path: "/api/v1/agents/host-1"}},
		{"authorize agent", 200, `{}`, func(ctx context.Context, c *client.Client) error {
			_, err := c.AuthorizeAgent(ctx, "host-1", api.AuthorizeAgent{Groups: []string{"linux"}})
			return err
		}, recorded{method: "POST", path: "/api/v1/agents/host-1/authorize", body: `{"groups":["linux"]}`}},
		{"enable agent", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.EnableAgent(ctx, "3"); return err },
			recorded{method: "POST", path: "/api/v1/agents/3/enable"}},
		{"disable agent", 200, `{}`, func(ctx context.Context, c *client.Client) error { _, err := c.DisableAgent(ctx, "3"); return err },
			recorded{method: "POST", path: "/api/v1/agents/3/disable"}},
		{"delete agent", 204, ``, func(ctx context.Context, c *client.Client) error { return c.DeleteAgent(ctx, "3", false) },
			recorded{method: "DELETE", path: "/api/v1/agents/3"}},
		{"delete busy agent", 204, ``, func(ctx context.Context, c *client.Client) error { return c.DeleteAgent(ctx, "3", true) },
			recorded{method: "DELETE", path: "/api/v1/agents/3", query: "force=1"}},
		{"rotate agent token", 200, `{}`, func(ctx context.Context, c *client.Client) error {
			_, err := c.RotateAgentToken(ctx, "host-1")
			return err
		},
			recorded{method: "POST", path: "/api/v1/agents/host-1/rotate-token"}},
		{"list groups", 200, `[]`, func(ctx context.Context, c *client.Client) error { _, err := c.ListGroups(ctx); return err },
			recorded{method: "GET", path: "/api/v1/groups"}},
		{"create group", 201, `{}`, func(ctx context.Context, c *client.Client) error {
			_, err := c.CreateGroup(ctx, api.CreateGroup{Name: "linux"})
			return err
		}, recorded{method: "POST", path: "/api/v1/groups", body: `{"name":"linux"}`}},
		{"delete group", 204, ``, func(ctx context.Context, c *client.Client) error { return c.DeleteGroup(ctx, "linux") },
			recorded{method: "DELETE", path: "/api/v1/groups/linux"}},
		{"add agent to group", 200, `{}`, func(ctx context.Context, c *client.Client) error {
			_, err := c.AddAgentToGroup(ctx, "linux", "host-1")
			return err
		}, recorded{method: "PUT", path: "/api/v1/groups/linux/agents/host-1"}},
		{"remove agent from group", 200, `{}`, func(ctx context.Context, c *client.Client) error {
			_, err := c.RemoveAgentFromGroup(ctx, "linux", "host-1")
			return err
		}, recorded{method: "DELETE", path: "/api/v1/groups/linux/agents/host-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, rec := recorder(t, tc.status, tc.answer)
			c, err := client.New(srv.URL, "tok")
			require.NoError(t, err)
			require.NoError(t, tc.call(t.Context(), c))
			assert.Equal(t, tc.want.method, rec.method)
			assert.Equal(t, tc.want.path, rec.path)
			assert.Equal(t, tc.want.query, rec.query)
			assert.Equal(t, "Bearer tok", rec.auth)
			if tc.want.body == "" {
				assert.Empty(t, rec.body)
			} else {
				assert.JSONEq(t, tc.want.body, rec.body)
			}
		})
	}
}

func TestBaseURLWithPathPrefix(t *testing.T) {
	t.Parallel()
	srv, rec := recorder(t, 200, `[]`)
	c, err := client.New(srv.URL+"/kk/", "")
	require.NoError(t, err)
	_, err = c.ListGroups(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "/kk/api/v1/groups", rec.path)
	assert.Empty(t, rec.auth, "no token, no Authorization header")
}

func TestListNeverNil(t *testing.T) {
	t.Parallel()
	srv, _ := recorder(t, 200, `null`)
	c, err := client.New(srv.URL, "")
	require.NoError(t, err)
	ps, err := c.ListProjects(t.Context())
	require.NoError(t, err)
	require.NotNil(t, ps)
	b, _ := json.Marshal(ps)
	assert.Equal(t, "[]", string(b))
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		status   int
		body     string
		target   error
		wantCode string
		wantMsg  string
	}{
		{"not found envelope", 404, `{"error":{"code":"not_found","message":"project \"x\" not found"}}`,
			ci.ErrNotFound, api.CodeNotFound, `project "x" not found`},
		{"unauthorized envelope", 401, `{"error":{"code":"unauthorized","message":"invalid token"}}`,
			ci.ErrUnauthorized, api.CodeUnauthorized, "invalid token"},
		{"conflict envelope", 409, `{"error":{"code":"conflict","message":"exists"}}`,
			ci.ErrConflict, api.CodeConflict, "exists"},
		{"plain text 404", 404, `404 page not found`, ci.ErrNotFound, api.CodeNotFound, "HTTP 404: 404 page not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := recorder(t, tc.status, tc.body)
			c, err := client.New(srv.URL, "")
			require.NoError(t, err)
			_, err = c.GetProject(t.Context(), "x")
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.target)
			var ae *api.Error
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.status, ae.Status)
			assert.Equal(t, tc.wantCode, ae.Code)
			assert.Equal(t, tc.wantMsg, ae.Message)
		})
	}
}

func TestInvalidSchemaDetails(t *testing.T) {
	t.Parallel()
	srv, _ := recorder(t, 400, `{"error":{"code":"invalid_schema","message":"invalid stage","details":[{"line":3,"col":5,"key":"jobs[0].steps[0].cmdd","message":"unknown key"}]}}`)
	c, err := client.New(srv.URL, "")
	require.NoError(t, err)
	_, err = c.PutStage(t.Context(), 1, "s", api.PutStage{Code: "x"})
	var ae *api.Error
	require.ErrorAs(t, err, &ae)
	require.Len(t, ae.Details, 1)
	assert.Equal(t, 3, ae.Details[0].Line)
	assert.ErrorIs(t, err, ci.ErrInvalid)
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := client.New(url, "")
	require.NoError(t, err)
	_, err = c.ListProjects(t.Context())
	var ue *client.UnreachableError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, url, ue.URL)
	assert.Contains(t, err.Error(), url)
	assert.Contains(t, err.Error(), "kkd serve")
	assert.Contains(t, err.Error(), "--server")
}

func TestCancelledContextIsNotUnreachable(t *testing.T) {
	t.Parallel()
	srv, _ := recorder(t, 200, `[]`)
	c, err := client.New(srv.URL, "")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.ListProjects(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	var ue *client.UnreachableError
	assert.False(t, errors.As(err, &ue))
}

func TestNewRejectsBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "127.0.0.1:6363", "ftp://x", "http://", "http://h/?q=1"} {
		_, err := client.New(u, "")
		assert.Error(t, err, u)
	}
}

// TestLogsStream checks that followed logs arrive while the server is still
// writing: the handler waits for the client to acknowledge each line.
func TestLogsStream(t *testing.T) {
	t.Parallel()
	ack := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "1", r.URL.Query().Get("follow"))
		w.Header().Set("Content-Type", "text/plain")
		for _, line := range []string{"one\n", "two\n", "three\n"} {
			_, _ = io.WriteString(w, line)
			w.(http.Flusher).Flush()
			select {
			case <-ack:
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, "")
	require.NoError(t, err)
	rc, err := c.Logs(t.Context(), 1, nil, true)
	require.NoError(t, err)
	defer rc.Close()
	br := bufio.NewReader(rc)
	var got []string
	for range 3 {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		got = append(got, strings.TrimSpace(line))
		ack <- struct{}{}
	}
	_, err = br.ReadString('\n')
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, []string{"one", "two", "three"}, got)
}
