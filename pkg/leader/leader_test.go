package leader

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAlways(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	calls := make(chan struct{}, 10)
	done := make(chan error, 1)
	go func() {
		done <- Always{Logger: slog.New(slog.DiscardHandler), Retry: time.Millisecond}.Run(ctx, func(ctx context.Context) error {
			calls <- struct{}{}
			if len(calls) < 2 {
				return errors.New("boom") // restarted after Retry
			}
			<-ctx.Done()
			return nil
		})
	}()
	<-calls
	<-calls
	cancel()
	require.NoError(t, <-done)
}
