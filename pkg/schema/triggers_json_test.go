package schema

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTriggersJSON(t *testing.T) {
	t.Parallel()
	yes := true
	tests := []struct {
		name string
		in   Triggers
		json string
	}{
		{name: "parent", in: Triggers{Parent: &yes}, json: `{"parent":true}`},
		{name: "empty", in: Triggers{}, json: `{}`},
		{
			name: "webhooks inline",
			in:   Triggers{Cron: "0 2 * * *", Webhooks: map[string]any{"github": map[string]any{"push": true}, "gitea": true}},
			json: `{"cron":"0 2 * * *","gitea":true,"github":{"push":true}}`,
		},
		{
			name: "repo",
			in:   Triggers{Manual: true, Repo: map[string]any{"url": "u", "interval": "1m"}},
			json: `{"manual":true,"repo":{"interval":"1m","url":"u"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tt.in)
			require.NoError(t, err)
			assert.JSONEq(t, tt.json, string(b))
			var back Triggers
			require.NoError(t, json.Unmarshal(b, &back))
			assert.Equal(t, tt.in, back)
		})
	}
}

func TestStageJSONRoundTrip(t *testing.T) {
	t.Parallel()
	st := Stage{Parent: "root", Triggers: Triggers{Webhooks: map[string]any{"gitlab": []any{"push"}}},
		Parameters: []Parameter{}, Jobs: []Job{}}
	b, err := json.Marshal(st)
	require.NoError(t, err)
	assert.JSONEq(t, `{"parent":"root","triggers":{"gitlab":["push"]},"parameters":[],"jobs":[]}`, string(b))
	var back Stage
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, st, back)
	assert.Error(t, json.Unmarshal([]byte(`{"triggers": 5}`), &back))
}
