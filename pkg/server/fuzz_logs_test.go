package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
)

// FuzzLogChunks drives log chunk ingestion (POST .../steps/{idx}/logs) with
// an arbitrary sequence of chunks: any step index (valid or not), any seq
// (repeats, gaps, going back), any attempt (current or stale), any bytes.
// Whatever the sequence, no answer is a 5xx, every refusal is a JSON error
// envelope, and each step's stored log is exactly the accepted chunks in seq
// order, where a repeat of a stored seq changes nothing (first write wins).
//
// The input is read as records: a header byte (bits 0-1: step 0..3, of which
// 3 does not exist; bit 2: a stale attempt; bits 3-7: seq), a length byte,
// then that many data bytes.
//
//	go test -run='^$' -fuzz=FuzzLogChunks -fuzztime=30s ./pkg/server/
func FuzzLogChunks(f *testing.F) {
	const steps = 3
	e := newEnv(f)
	fx := e.fixture(f, steps)
	a := e.agent(f, "chunker")

	rec := func(step, seq int, stale bool, data string) []byte {
		h := byte(step) | byte(seq)<<3
		if stale {
			h |= 4
		}
		return append([]byte{h, byte(len(data))}, data...)
	}
	cat := func(rs ...[]byte) []byte { return bytes.Join(rs, nil) }
	f.Add(cat(rec(0, 0, false, "line 1\n"), rec(0, 1, false, "line 2\n"), rec(1, 0, false, "other\n")))
	f.Add(cat(rec(0, 0, false, "a"), rec(0, 0, false, "b"), rec(0, 2, false, "gap"), rec(0, 1, false, "c")))
	f.Add(cat(rec(2, 0, true, "stale"), rec(3, 0, false, "no such step"), rec(1, 5, false, "")))
	f.Add(cat(rec(0, 0, false, "\xe2\x82"), rec(0, 1, false, "\xac cut inside a rune\n"), rec(0, 31, false, "far")))

	f.Fuzz(func(t *testing.T, input []byte) {
		j := e.queueJob(t, fx)
		asg := e.claim(t, a)
		require.Equal(t, j.ID, asg.JobID)
		e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/start", j.ID), api.AttemptRequest{Attempt: asg.Attempt}, a.cred).ok(t, http.StatusNoContent, nil)

		stored := make([]map[int][]byte, steps) // accepted chunks per step, by seq
		for i := range stored {
			stored[i] = map[int][]byte{}
		}
		for len(input) >= 2 {
			h, n := input[0], int(input[1])
			input = input[2:]
			n = min(n, len(input))
			data := input[:n]
			input = input[n:]
			step, seq, attempt := int(h&3), int(h>>3), asg.Attempt
			if h&4 != 0 {
				attempt++ // an attempt the server never gave out
			}
			r := e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/steps/%d/logs?attempt=%d&seq=%d", j.ID, step, attempt, seq), data, a.cred)
			require.Less(t, r.status, 500, "chunk step %d seq %d attempt %d: %s", step, seq, attempt, r.body)
			if r.status != http.StatusNoContent {
				requireEnvelope(t, r.status, r.body, "")
				continue
			}
			require.Less(t, step, steps, "a chunk of a step the job lacks was accepted")
			require.Equal(t, asg.Attempt, attempt, "a chunk of an attempt that is not current was accepted")
			if _, ok := stored[step][seq]; !ok {
				stored[step][seq] = bytes.Clone(data)
			}
		}

		for step := range steps {
			var want []byte
			seqs := make([]int, 0, len(stored[step]))
			for seq := range stored[step] {
				seqs = append(seqs, seq)
			}
			slices.Sort(seqs)
			for _, seq := range seqs {
				want = append(want, stored[step][seq]...)
			}
			r := e.user(t, "GET", fmt.Sprintf("/jobs/%d/logs?step=%d", j.ID, step), nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			require.Equal(t, string(want), string(r.body), "step %d: the log must be the accepted chunks in seq order", step)
		}
		e.call(t, "POST", fmt.Sprintf("/agent/jobs/%d/complete", j.ID), api.CompleteJob{Attempt: asg.Attempt, Result: ci.JobOK}, a.cred).ok(t, http.StatusNoContent, nil)
	})
}
