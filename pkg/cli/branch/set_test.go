package branch_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/cli/branch"
	"github.com/kraken-go/kk/pkg/cli/clitest"
	"github.com/kraken-go/kk/pkg/cli/cmdutil"
)

func TestParseDays(t *testing.T) {
	for in, want := range map[string]int{"90d": 90, "90": 90, "4w": 28, "default": 0, " 7D ": 7} {
		got, err := branch.ParseDays(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "0", "-3d", "3h", "abc", "99999w"} {
		_, err := branch.ParseDays(in)
		assert.Error(t, err, in)
	}
}

func TestSetRetention(t *testing.T) {
	t.Parallel()
	a := clitest.NewAPI(t)
	a.Reply("GET /api/v1/projects/demo/branches/main", 200, ci.Branch{ID: 7, Name: "main", Retention: ci.Retention{KeepLogsDays: 5}})
	var got ci.Retention
	a.Handle("PUT /api/v1/projects/demo/branches/7/retention", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got))
		clitest.JSON(w, 200, ci.Branch{ID: 7, Name: "main", Retention: got})
	})
	res := clitest.NewEnv(t, a).Run(t, "branch", "set", "demo/main", "--keep-flows", "180d", "--keep-artifacts", "2w")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.Stderr)
	assert.Equal(t, ci.Retention{KeepFlowsDays: 180, KeepLogsDays: 5, KeepArtifactsDays: 14}, got, "unset flags keep their value")
	assert.Contains(t, res.Stdout, "flows 180d, logs 5d, artifacts 14d")

	res = clitest.NewEnv(t, a).Run(t, "branch", "set", "demo/main", "--keep-logs", "soon")
	assert.Equal(t, cmdutil.ExitUsage, res.Code)
	assert.Contains(t, res.Stderr, `"soon" is not a retention`)
	res = clitest.NewEnv(t, a).Run(t, "branch", "set", "demo/main")
	assert.Equal(t, cmdutil.ExitUsage, res.Code)
}
