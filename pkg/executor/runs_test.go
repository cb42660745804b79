package executor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRuns(t *testing.T) {
	t.Parallel()
	var r Runs
	end, err := r.Begin()
	require.NoError(t, err)
	closing := r.Closing()

	// Close signals Closing and waits for the running command; a short ctx
	// gives up waiting.
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, r.Close(short), context.DeadlineExceeded)
	select {
	case <-closing:
	default:
		t.Fatal("Close must signal Closing")
	}
	_, err = r.Begin()
	require.True(t, errors.Is(err, ErrClosed), "no command starts after Close")

	end()
	require.NoError(t, r.Close(context.Background()), "Close is idempotent and returns once commands ended")
}

func TestCommandWorkDir(t *testing.T) {
	for _, tc := range []struct{ dir, want string }{
		{"", "/ws"},
		{".", "/ws"},
		{"src/app", "/ws/src/app"},
		{"/opt/x", "/opt/x"},
	} {
		if got := (Command{Dir: tc.dir}).WorkDir("/ws"); got != tc.want {
			t.Errorf("WorkDir(%q) = %q, want %q", tc.dir, got, tc.want)
		}
	}
}

func TestRunsStart(t *testing.T) {
	var r Runs
	if _, _, err := r.Start(context.Background(), Command{}); err == nil {
		t.Fatal("empty argv must be refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, cancelled, err := r.Start(ctx, Command{Argv: []string{"true"}}); err != nil || !cancelled {
		t.Fatalf("done ctx: cancelled=%v err=%v", cancelled, err)
	}
	end, cancelled, err := r.Start(context.Background(), Command{Argv: []string{"true"}})
	if err != nil || cancelled {
		t.Fatalf("start: cancelled=%v err=%v", cancelled, err)
	}
	end()
	// Nothing is left registered: Close returns at once.
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Start(context.Background(), Command{Argv: []string{"true"}}); err == nil {
		t.Fatal("Start after Close must fail")
	}
}
