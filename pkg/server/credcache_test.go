package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/server"
)

// TestAgentCredentialCacheRevocation: agent requests other than the work
// poll trust a verified credential for a couple of seconds without reading
// the store. A revocation on this kkd (rotate, delete) takes effect at once;
// one on another replica takes effect when its hub signal arrives, and at
// the latest once the cache entry expires (the signal lost).
func TestAgentCredentialCacheRevocation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		revoke func(t *testing.T, e *env, a testAgent)
		// expire: the revocation is seen only after the cache entry expired.
		expire bool
	}{
		{name: "rotate on this kkd", revoke: func(t *testing.T, e *env, a testAgent) {
			e.user(t, "POST", "/agents/"+a.name+"/rotate-token", nil).ok(t, http.StatusOK, nil)
		}},
		{name: "delete on this kkd", revoke: func(t *testing.T, e *env, a testAgent) {
			e.user(t, "DELETE", "/agents/"+a.name, nil).ok(t, http.StatusNoContent, nil)
		}},
		{name: "re-register on this kkd", revoke: func(t *testing.T, e *env, a testAgent) {
			var rr api.RegisterResponse
			e.call(t, "POST", "/agent/register", a.register(""), "").ok(t, http.StatusOK, &rr)
			require.NotEqual(t, a.cred, rr.Credential)
		}},
		{name: "rotate on another replica", revoke: func(t *testing.T, e *env, a testAgent) {
			require.NoError(t, e.st.SetAgentCredential(t.Context(), a.id, ""))
			e.hub.Deliver(server.CredentialsKey) // what the bridge does
		}},
		{name: "rotate on another replica, signal lost", expire: true, revoke: func(t *testing.T, e *env, a testAgent) {
			require.NoError(t, e.st.SetAgentCredential(t.Context(), a.id, ""))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{now: time.Now()}
			e := newEnv(t, func(c *server.Config) { c.Now = clk.Now })
			a := e.agent(t, "alice")
			// A cached route: the job does not exist, so an authenticated
			// agent is told its attempt is stale (409), a refused one 401.
			heartbeat := func() response {
				return e.call(t, "POST", "/agent/jobs/999999/heartbeat", api.AttemptRequest{Attempt: 1}, a.cred)
			}
			for range 2 { // the second is answered from the cache
				heartbeat().envelope(t, http.StatusConflict, api.CodeStaleAttempt)
			}
			tc.revoke(t, e, a)
			if tc.expire {
				heartbeat().envelope(t, http.StatusConflict, api.CodeStaleAttempt) // the cache answers until the entry expires
				clk.Add(2*time.Second + time.Millisecond)
			}
			ae := heartbeat().envelope(t, http.StatusUnauthorized, api.CodeUnauthorized)
			require.Contains(t, ae.Message, "register again")
		})
	}
}
