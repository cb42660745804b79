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
