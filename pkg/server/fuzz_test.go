package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
)

// FuzzAPIRequests sends arbitrary bodies to POST routes that parse untrusted
// input (user and agent), through the handler without a network. Whatever the
// body, the answer is a success or a JSON error envelope, never a 5xx, and
// the handler does not panic.
//
//	go test -run='^$' -fuzz=FuzzAPIRequests -fuzztime=30s ./pkg/server/
func FuzzAPIRequests(f *testing.F) {
	e := newEnv(f)
	fx := e.fixture(f, 2)
	a := e.agent(f, "builder")
	j := e.queueJob(f, fx)
	require.Equal(f, j.ID, e.claim(f, a).JobID)

	routes := []struct {
		path  string
		token string
	}{
		{path: "/projects", token: e.token},
		{path: "/agent/register", token: ""},
		{path: "/schema/check", token: e.token},
		{path: fmt.Sprintf("/agent/jobs/%d/complete", j.ID), token: a.cred},
	}

	reg, err := json.Marshal(newAgentIdentity("fuzzed").register(regKey, "linux"))
	require.NoError(f, err)
	check, err := json.Marshal(api.SchemaCheck{Code: stageCode("all", 2), Args: map[string]string{"a": "b"}, Dev: true})
	require.NoError(f, err)
	seeds := []struct {
		route uint8
		body  string
	}{
		{0, `{"name": "p1", "description": "d"}`},
		{0, `{"name": "p1"}}`},
		{0, `{"name": "` + strings.Repeat("x", 200) + `"}`},
		{0, `{"name": "\u0000"}`},
		{0, `{"name": 1e400}`},
		{1, string(reg)},
		{1, `{"uuid": "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8", "name": "n", "enroll_secret": "` + strings.Repeat("s", 32) + `", "groups": ["all", "all"], "registration_key": "` + regKey + `"}`},
		{1, `{"uuid": "6ba7b8109dad11d180b400c04fd430c8", "name": "n", "enroll_secret": "` + strings.Repeat("t", 32) + `"}`},
		{1, `{"host_info": {"cpus": -1, "memory_mib": 9223372036854775807}}`},
		{2, string(check)},
		{2, `{"code": "def stage(ctx):\n    return {\"jobs\": [{\"name\": \"x\", \"steps\": [{\"tool\": \"shell\", \"cmd\": \"%s\" % ctx.args.nope}]}]}\n"}`},
		{2, `{"code": "def stage(ctx):\n    while True:\n        pass\n"}`},
		{2, `{"code": "load('x', 'y')"}`},
		{2, `{"code": "def stage(ctx):\n    return {\"parameters\": [{\"name\": \"a\", \"default\": 1}]}\n"}`},
		{3, `{"attempt": 2, "result": "ok"}`},
		{3, `{"attempt": 1, "result": "weird"}`},
		{3, `{"attempt": -1, "result": "ok"}`},
		{3, `{"attempt": 1, "result": "ok", "message": "` + strings.Repeat("m", 1000) + `"}`},
		{3, ``},
		{3, `[]`},
	}
	for _, s := range seeds {
		f.Add(s.route, []byte(s.body))
	}

	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := routes[int(route)%len(routes)]
		req := httptest.NewRequest("POST", api.Prefix+rt.path, bytes.NewReader(body))
		if rt.token != "" {
			req.Header.Set("Authorization", "Bearer "+rt.token)
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		status, out := rec.Code, rec.Body.Bytes()
		require.Less(t, status, 500, "POST %s %q: %s", rt.path, body, out)
		if status == http.StatusNoContent {
			require.Empty(t, out)
			return
		}
		require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json"), "content type %q", rec.Header().Get("Content-Type"))
		if status >= 400 {
			requireEnvelope(t, status, out, "")
			return
		}
		require.True(t, json.Valid(out), "invalid JSON answer: %s", out)
	})
}
