package schema

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCron(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rule string
		err  string
	}{
		{rule: "30 9 * * *"},
		{rule: "*/15 * * * *"},
		{rule: "0 0-23/2 1,15 * mon-fri"},
		{rule: "5/10 * * jan-mar,dec SUN"},
		{rule: "0 0 * * 7"},
		{rule: "@daily"},
		{rule: "@Hourly"},
		{rule: "  1 * * * *  "},
		{rule: "", err: "want 5 fields"},
		{rule: "* * * *", err: "want 5 fields"},
		{rule: "* * * * * *", err: "want 5 fields"},
		{rule: "60 * * * *", err: "minute field: value 60 out of range 0-59"},
		{rule: "* 24 * * *", err: "hour field: value 24 out of range 0-23"},
		{rule: "* * 0 * *", err: "day of month field: value 0 out of range 1-31"},
		{rule: "* * * 13 *", err: "month field: value 13 out of range 1-12"},
		{rule: "* * * * 8", err: "day of week field: value 8 out of range 0-7"},
		{rule: "* * * foo *", err: `month field: bad value "foo"`},
		{rule: "*/0 * * * *", err: `bad step "0"`},
		{rule: "5-1 * * * *", err: `range "5-1" goes backwards`},
		{rule: "-1 * * * *", err: `bad value ""`},
		{rule: "1,,2 * * * *", err: `bad value ""`},
		{rule: "@reboot", err: "want 5 fields"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			t.Parallel()
			_, err := ParseCron(tt.rule)
			if tt.err == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
		})
	}
}

func TestCronNext(t *testing.T) {
	t.Parallel()
	from := time.Date(2024, 2, 28, 10, 17, 42, 0, time.UTC) // a Wednesday
	tests := []struct {
		rule string
		want time.Time
	}{
		{rule: "30 9 * * *", want: time.Date(2024, 2, 29, 9, 30, 0, 0, time.UTC)},
		{rule: "*/15 * * * *", want: time.Date(2024, 2, 28, 10, 30, 0, 0, time.UTC)},
		{rule: "17 10 * * *", want: time.Date(2024, 2, 29, 10, 17, 0, 0, time.UTC)},
		{rule: "0 0 * * sun", want: time.Date(2024, 3, 3, 0, 0, 0, 0, time.UTC)},
		{rule: "0 0 * * 7", want: time.Date(2024, 3, 3, 0, 0, 0, 0, time.UTC)},
		{rule: "0 12 31 * *", want: time.Date(2024, 3, 31, 12, 0, 0, 0, time.UTC)},
		{rule: "0 0 29 2 *", want: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{rule: "0 0 1 1 *", want: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{rule: "0 8 13 * fri", want: time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)}, // day OR weekday
		{rule: "0 0 30 2 *", want: time.Time{}},                                   // never
		{rule: "@hourly", want: time.Date(2024, 2, 28, 11, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			t.Parallel()
			c, err := ParseCron(tt.rule)
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.Next(from))
		})
	}
}
