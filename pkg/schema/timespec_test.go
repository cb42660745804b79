package schema

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseInterval(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "10m", want: 10 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "90s", want: 90 * time.Second},
		{in: "1h 30m", want: 90 * time.Minute},
		{in: "2 hours, 5 minutes", want: 2*time.Hour + 5*time.Minute},
		{in: "1w2d", want: 9 * 24 * time.Hour},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "600", want: 10 * time.Minute},
		{in: "1:30", want: 90 * time.Second},
		{in: "1:00:00", want: time.Hour},
		{in: " 15M ", want: 15 * time.Minute},
		{in: "1 day and 2 hrs", want: 26 * time.Hour},
		{in: "", err: "empty"},
		{in: "0s", err: "must be positive"},
		{in: "10", want: 10 * time.Second},
		{in: "10x", err: `unknown unit "x"`},
		{in: "m", err: "expected a number"},
		{in: "1..5h", err: "bad number"},
		{in: "1:2:3:4", err: "too many colons"},
		{in: "a:b", err: "bad clock field"},
		{in: "400d", err: "longer than a year"},
		{in: "99999999999999999999h", err: "longer than a year"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseInterval(tt.in)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseDate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "2012-01-19 17:21:00", want: time.Date(2012, 1, 19, 17, 21, 0, 0, time.UTC)},
		{in: "2012-01-19T17:21:00", want: time.Date(2012, 1, 19, 17, 21, 0, 0, time.UTC)},
		{in: "2012-01-19 17:21", want: time.Date(2012, 1, 19, 17, 21, 0, 0, time.UTC)},
		{in: "2012-01-19", want: time.Date(2012, 1, 19, 0, 0, 0, 0, time.UTC)},
		{in: "2012-01-19T17:21:00+02:00", want: time.Date(2012, 1, 19, 15, 21, 0, 0, time.UTC)},
		{in: "2012/01/19 17:21:00", want: time.Date(2012, 1, 19, 17, 21, 0, 0, time.UTC)},
		{in: "tomorrow", err: true},
		{in: "2012-13-01 00:00:00", err: true},
		{in: "", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDate(tt.in)
			if tt.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.True(t, tt.want.Equal(got), "got %v", got)
		})
	}
}
