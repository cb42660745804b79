package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
)

func TestSchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.project(t, "p")
	b := e.branch(t, "p", "main")
	trig := func(triggers string) string {
		return fmt.Sprintf(`def stage(ctx):
    return {"parent": "root", "triggers": %s, "jobs": []}
`, triggers)
	}
	e.stage(t, b.ID, "plain", trig(`{"parent": True}`))
	e.stage(t, b.ID, "nightly", trig(`{"cron": "0 3 * * *", "interval": "1h"}`))
	e.stage(t, b.ID, "poll", trig(`{"repo": {"url": "https://git.example.com/r.git", "interval": "5m"}}`))

	var got []api.ScheduleEntry
	e.user(t, "GET", fmt.Sprintf("/branches/%d/schedule", b.ID), nil).ok(t, http.StatusOK, &got)
	require.Len(t, got, 3, "%+v", got)
	byKey := map[string]api.ScheduleEntry{}
	for _, x := range got {
		byKey[x.Stage+"/"+x.Trigger] = x
	}
	now := time.Now().UTC()
	cron := byKey["nightly/cron"]
	require.Equal(t, "0 3 * * *", cron.Rule)
	require.Nil(t, cron.LastFired)
	require.NotNil(t, cron.Next)
	require.Equal(t, 3, cron.Next.Hour())
	require.Zero(t, cron.Next.Minute())
	require.True(t, cron.Next.After(now.Add(-time.Second)) && cron.Next.Before(now.Add(24*time.Hour+time.Second)))
	iv := byKey["nightly/interval"]
	require.NotNil(t, iv.Next)
	require.WithinDuration(t, now.Add(time.Hour), *iv.Next, time.Minute, "an hour after the apply")
	poll := byKey["poll/repo"]
	require.JSONEq(t, `{"url": "https://git.example.com/r.git", "interval": "5m"}`, poll.Rule)
	require.Nil(t, poll.LastPoll)
	require.Contains(t, poll.Note, "polls every 5m")

	e.user(t, "GET", "/branches/9999/schedule", nil).envelope(t, http.StatusNotFound, api.CodeNotFound)
}
