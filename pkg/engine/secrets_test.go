package engine_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/store"
)

func TestSecretRefs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, s := range []store.Secret{
		{ProjectID: f.project.ID, Name: "token", Kind: "simple", Sealed: []byte("x")},
		{ProjectID: f.project.ID, Name: "deploy", Kind: "ssh-key", Sealed: []byte("x")},
	} {
		require.NoError(t, f.st.CreateSecret(f.ctx, &s))
	}
	key := func(n string) map[string]any {
		return map[string]any{"username": "#{secrets." + n + ".username}", "key": "#{secrets." + n + ".key}"}
	}
	existing := map[string]any{"token": "#{secrets.token}", "deploy": key("deploy")}
	with := func(extra map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range existing {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		name string
		code string
		want map[string]any
	}{
		{"no references", `def stage(ctx): return {}`, existing},
		{"existing ones keep their kind", `"#{secrets.deploy}" + ctx.secrets.token.key`, existing},
		{"missing simple", `{"cmd": "echo #{secrets.ghost} #{ secrets . ghost2 }"}`,
			with(map[string]any{"ghost": "#{secrets.ghost}", "ghost2": "#{secrets.ghost2}"})},
		{"missing key", `ctx.secrets.gk.key + ctx.secrets["g-k2"]["username"] + ctx.secrets['g3']`,
			with(map[string]any{"gk": key("gk"), "g-k2": key("g-k2"), "g3": "#{secrets.g3}"})},
		{"legacy names", `"#{KK_SECRET_SIMPLE_s1} #{KK_SECRET_USER_k1} #{KK_SECRET_KEY_k2}"`,
			with(map[string]any{"s1": "#{secrets.s1}", "k1": key("k1"), "k2": key("k2")})},
		{"dict methods are no names", `ctx.secrets.get("x") + str(ctx.secrets.keys())`, existing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, f.eng.SecretRefs(f.ctx, f.project.ID, tc.code))
		})
	}
	require.Nil(t, f.eng.SecretRefs(f.ctx, 9999, "no secrets"))
}
