package agent

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff yields exponentially growing delays with jitter: attempt n waits a
// random duration in [d/2, d] where d = min·2ⁿ capped at max.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.min << min(b.n, 30)
	if d <= 0 || d > b.max {
		d = b.max
	}
	b.n++
	half := d / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.n = 0 }

// sleepCtx waits d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
