package inside

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		endOn   string // the signal after which the command ends ("" = never)
		want    bool
		wantSig []string
	}{
		{"ends on TERM", "TERM", true, []string{"TERM"}},
		{"needs KILL", "KILL", true, []string{"TERM", "KILL"}},
		{"never ends", "", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			done := make(chan struct{})
			var mu sync.Mutex
			var sent []string
			var once sync.Once
			signal := func(sig string) {
				mu.Lock()
				sent = append(sent, sig)
				mu.Unlock()
				if sig == tc.endOn {
					once.Do(func() { close(done) })
				}
			}
			require.Equal(t, tc.want, Stop(signal, 50*time.Millisecond, done))
			mu.Lock()
			defer mu.Unlock()
			if tc.wantSig != nil {
				require.Equal(t, tc.wantSig, sent)
				return
			}
			// Never ending: TERM once, then KILL repeated until StopWait.
			require.Equal(t, "TERM", sent[0])
			require.Greater(t, len(sent), 3)
			for _, s := range sent[1:] {
				require.Equal(t, "KILL", s)
			}
		})
	}
}
