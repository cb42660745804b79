package server

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolveValue(t *testing.T) {
	t.Parallel()
	vals := map[string]string{"a": "VA", "k.key": "KEY", "k.username": "U", "loop": "#{secrets.a}"}
	value := func(name, part string) (string, error) {
		if part != "" {
			name += "." + part
		}
		v, ok := vals[name]
		if !ok {
			return "", errors.New("missing " + name)
		}
		return v, nil
	}
	for _, tc := range []struct {
		name string
		in   any
		want any
		err  string
	}{
		{"plain", "no refs", "no refs", ""},
		{"several", "x #{secrets.a}-#{secrets.k.key}@#{secrets.k.username}", "x VA-KEY@U", ""},
		{"nested", map[string]any{"l": []any{"#{secrets.a}", 3.0, map[string]any{"m": "#{secrets.a}"}}, "b": true},
			map[string]any{"l": []any{"VA", 3.0, map[string]any{"m": "VA"}}, "b": true}, ""},
		{"values are not resolved again", "#{secrets.loop}", "#{secrets.a}", ""},
		{"other expressions stay", "#{secrets.a.other} #{secret.a} #{ secrets.a }", "#{secrets.a.other} #{secret.a} #{ secrets.a }", ""},
		{"missing", []any{"ok", "#{secrets.nope}"}, nil, "missing nope"},
		{"nil", nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := resolveValue(tc.in, value)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
