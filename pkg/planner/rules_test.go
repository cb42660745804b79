package planner

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/schema"
	"github.com/kraken-go/kk/pkg/store"
)

func mustRule(t *testing.T, tr schema.Triggers) rule {
	t.Helper()
	rules, bad := rulesOf(&schema.Stage{Triggers: tr})
	require.Empty(t, bad)
	require.Len(t, rules, 1)
	return rules[0]
}

func TestRuleDueAndNext(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC) // Since
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tests := []struct {
		name      string
		tr        schema.Triggers
		lastFired time.Time
		now       time.Time
		due       time.Time // zero: nothing due
		next      time.Time // after firing due (or now)
	}{
		{"cron: before the first minute", schema.Triggers{Cron: "* * * * *"}, time.Time{}, at(10 * time.Second),
			time.Time{}, time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC)},
		{"cron: at the boundary", schema.Triggers{Cron: "* * * * *"}, time.Time{}, time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC),
			time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC), time.Date(2026, 3, 1, 12, 2, 0, 0, time.UTC)},
		{"cron: fired, not due again", schema.Triggers{Cron: "* * * * *"}, time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC), time.Date(2026, 3, 1, 12, 1, 0, 500, time.UTC),
			time.Time{}, time.Date(2026, 3, 1, 12, 2, 0, 0, time.UTC)},
		{"cron: ten missed minutes are one catch-up at the latest", schema.Triggers{Cron: "* * * * *"}, time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC), time.Date(2026, 3, 1, 12, 11, 20, 0, time.UTC),
			time.Date(2026, 3, 1, 12, 11, 0, 0, time.UTC), time.Date(2026, 3, 1, 12, 12, 0, 0, time.UTC)},
		{"cron: a week down, daily rule", schema.Triggers{Cron: "30 9 * * *"}, time.Time{}, time.Date(2026, 3, 8, 10, 0, 0, 0, time.UTC),
			time.Date(2026, 3, 8, 9, 30, 0, 0, time.UTC), time.Date(2026, 3, 9, 9, 30, 0, 0, time.UTC)},
		{"cron: weekday names, UTC", schema.Triggers{Cron: "0 6 * * mon"}, time.Time{}, at(0),
			time.Time{}, time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)},
		{"interval: first is since+interval", schema.Triggers{Interval: "10m"}, time.Time{}, at(5 * time.Minute),
			time.Time{}, at(10 * time.Minute)},
		{"interval: due on time", schema.Triggers{Interval: "10m"}, time.Time{}, at(10 * time.Minute),
			at(10 * time.Minute), at(20 * time.Minute)},
		{"interval: missed periods coalesce, phase kept", schema.Triggers{Interval: "10m"}, at(10 * time.Minute), at(65 * time.Minute),
			at(60 * time.Minute), at(70 * time.Minute)},
		{"date: ahead", schema.Triggers{Date: "2026-03-02 08:00:00"}, time.Time{}, at(0),
			time.Time{}, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)},
		{"date: reached", schema.Triggers{Date: "2026-03-02 08:00:00"}, time.Time{}, time.Date(2026, 3, 2, 8, 0, 0, 1, time.UTC),
			time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), time.Time{}},
		{"date: missed while down, caught up once", schema.Triggers{Date: "2026-03-02 08:00:00"}, time.Time{}, time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC),
			time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), time.Time{}},
		{"date: fired once, never again", schema.Triggers{Date: "2026-03-02 08:00:00"}, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC),
			time.Time{}, time.Time{}},
		{"date: past when applied, never", schema.Triggers{Date: "2026-02-01 08:00:00"}, time.Time{}, at(time.Hour),
			time.Time{}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRule(t, tc.tr)
			st := store.TriggerState{Kind: r.kind, Rule: r.text, Since: t0, LastFired: tc.lastFired}
			due, ok := r.due(st, tc.now)
			require.Equal(t, !tc.due.IsZero(), ok)
			require.Equal(t, tc.due, due)
			if ok {
				st.LastFired = due
				_, again := r.due(st, tc.now)
				require.False(t, again, "one fire per due instant")
			}
			require.Equal(t, tc.next, r.next(st, tc.now))
		})
	}
}

func TestRepoRule(t *testing.T) {
	r := mustRule(t, schema.Triggers{Repo: map[string]any{"url": "https://x/r.git", "branch": "dev", "interval": "2s"}})
	require.Equal(t, KindRepo, r.kind)
	require.Equal(t, 2*time.Second, r.every)
	require.Equal(t, []repoSpec{{URL: "https://x/r.git", Branch: "dev"}}, r.repos)
	require.Equal(t, `{"branch":"dev","interval":"2s","url":"https://x/r.git"}`, r.text)

	r = mustRule(t, schema.Triggers{Repo: map[string]any{"repos": []any{map[string]any{"url": "a"}, map[string]any{"url": "b", "branch": "x"}}, "interval": float64(60)}})
	require.Equal(t, time.Minute, r.every)
	require.Equal(t, []repoSpec{{URL: "a"}, {URL: "b", Branch: "x"}}, r.repos)

	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := store.TriggerState{Since: t0}
	require.Equal(t, t0, r.next(st, t0.Add(time.Hour)), "the first poll is at once")
	st.Checked = t0.Add(time.Hour)
	require.Equal(t, t0.Add(time.Hour+time.Minute), r.next(st, t0.Add(time.Hour)))

	_, bad := rulesOf(&schema.Stage{Triggers: schema.Triggers{Repo: map[string]any{"interval": "1m"}, Cron: "61 * * * *"}})
	require.Contains(t, bad, KindRepo)
	require.Contains(t, bad, KindCron)
}
