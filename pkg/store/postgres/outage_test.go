package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store/pgtest"
)

// TestOutage stops the server under an open store: reads, writes and pings
// fail quickly with ci.ErrUnavailable (503 unavailable in the API) naming
// the server, and the same store works again once the server is back,
// without being reopened.
func TestOutage(t *testing.T) {
	t.Parallel()
	cl := pgtest.NewCluster(t)
	s := openURL(t, Config{URL: cl.URL() + "&connect_timeout=2"})
	ctx := context.Background()

	p := ci.Project{Name: "before"}
	require.NoError(t, s.CreateProject(ctx, &p))
	// Open connections in the pool, which the stop breaks.
	_, err := s.ListProjects(ctx)
	require.NoError(t, err)

	cl.Stop(t)
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"ping", s.Ping},
		{"read", func(ctx context.Context) error { _, err := s.ListProjects(ctx); return err }},
		{"get", func(ctx context.Context) error { _, err := s.GetProject(ctx, p.ID); return err }},
		{"write", func(ctx context.Context) error { return s.CreateProject(ctx, &ci.Project{Name: "during"}) }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call(ctx)
		require.Error(t, err, c.name)
		require.Less(t, time.Since(start), 5*time.Second, "%s: an unreachable database fails fast", c.name)
		require.ErrorIs(t, err, ci.ErrUnavailable, c.name)
		require.Contains(t, err.Error(), "database unreachable", c.name)
		require.Contains(t, err.Error(), cl.Addr(), c.name)
		require.Contains(t, err.Error(), "retries by itself", c.name)
		ae := api.FromError(err)
		require.Equal(t, 503, ae.Status, c.name)
		require.Equal(t, api.CodeUnavailable, ae.Code, c.name)
	}

	cl.Start(t)
	require.NoError(t, s.Ping(ctx), "the pool dials again by itself")
	require.NoError(t, s.CreateProject(ctx, &ci.Project{Name: "after"}))
	ps, err := s.ListProjects(ctx)
	require.NoError(t, err)
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	require.ElementsMatch(t, []string{"before", "after"}, names, "the write during the outage did not happen")
	require.False(t, errors.Is(s.Ping(ctx), ci.ErrUnavailable))
}
