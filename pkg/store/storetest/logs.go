package storetest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

func logCases() []testCase {
	return []testCase{
		{"append is idempotent", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 1)
			c := ci.LogChunk{JobID: jobs[0].ID, Step: 0, Seq: 0, Data: []byte("first\n")}
			inserted, err := s.AppendLog(f.ctx, c)
			require.NoError(t, err)
			require.True(t, inserted)
			inserted, err = s.AppendLog(f.ctx, c)
			require.NoError(t, err)
			require.False(t, inserted)
			c.Data = []byte("different\n")
			inserted, err = s.AppendLog(f.ctx, c)
			require.NoError(t, err)
			require.False(t, inserted)

			got, err := s.ReadLogs(f.ctx, jobs[0].ID, -1, -1, -1, 0)
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, "first\n", string(got[0].Data), "the first chunk stands")
		}},
		{"append to a missing job", func(t *testing.T, s store.Store) {
			_, err := s.AppendLog(t.Context(), ci.LogChunk{JobID: 42, Data: []byte("x")})
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"negative position is invalid", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 1)
			_, err := s.AppendLog(f.ctx, ci.LogChunk{JobID: jobs[0].ID, Step: -1})
			require.ErrorIs(t, err, ci.ErrInvalid)
			_, err = s.AppendLog(f.ctx, ci.LogChunk{JobID: jobs[0].ID, Seq: -1})
			require.ErrorIs(t, err, ci.ErrInvalid)
		}},
		{"read order, cursor, step filter and limit", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(2, 3)
			id := jobs[0].ID
			// Appended out of order, as retries and parallel senders may do.
			for _, p := range [][2]int64{{1, 1}, {0, 2}, {2, 0}, {0, 0}, {1, 0}, {0, 1}, {0, 10}} {
				_, err := s.AppendLog(f.ctx, ci.LogChunk{JobID: id, Step: int(p[0]), Seq: p[1],
					Data: fmt.Appendf(nil, "%d.%d", p[0], p[1])})
				require.NoError(t, err)
			}
			_, err := s.AppendLog(f.ctx, ci.LogChunk{JobID: jobs[1].ID, Step: 0, Seq: 0, Data: []byte("other")})
			require.NoError(t, err)

			tests := []struct {
				name      string
				step      int
				afterStep int
				afterSeq  int64
				limit     int
				want      []string
			}{
				{"all", -1, -1, -1, 0, []string{"0.0", "0.1", "0.2", "0.10", "1.0", "1.1", "2.0"}},
				{"limit", -1, -1, -1, 2, []string{"0.0", "0.1"}},
				{"after a chunk", -1, 0, 1, 0, []string{"0.2", "0.10", "1.0", "1.1", "2.0"}},
				{"after the last chunk of a step", -1, 0, 10, 0, []string{"1.0", "1.1", "2.0"}},
				{"after a step", -1, 1, 1 << 40, 0, []string{"2.0"}},
				{"cursor with limit", -1, 0, 2, 3, []string{"0.10", "1.0", "1.1"}},
				{"one step", 1, -1, -1, 0, []string{"1.0", "1.1"}},
				{"one step after a chunk", 0, 0, 0, 0, []string{"0.1", "0.2", "0.10"}},
				{"one step with limit", 0, -1, -1, 1, []string{"0.0"}},
				{"one step, cursor past it", 0, 1, -1, 0, []string{}},
				{"step without output", 5, -1, -1, 0, []string{}},
				{"at the end", -1, 2, 0, 0, []string{}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					got, err := s.ReadLogs(f.ctx, id, tc.step, tc.afterStep, tc.afterSeq, tc.limit)
					require.NoError(t, err)
					texts := []string{}
					for _, c := range got {
						require.Equal(t, id, c.JobID)
						require.Equal(t, fmt.Sprintf("%d.%d", c.Step, c.Seq), string(c.Data))
						texts = append(texts, string(c.Data))
					}
					require.Equal(t, tc.want, texts)
				})
			}
		}},
		{"large chunk round trips", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 1)
			data := make([]byte, 5<<20)
			_, _ = rand.Read(data)
			data[0], data[len(data)-1] = 0, 0
			inserted, err := s.AppendLog(f.ctx, ci.LogChunk{JobID: jobs[0].ID, Step: 0, Seq: 0, Data: data})
			require.NoError(t, err)
			require.True(t, inserted)
			got, err := s.ReadLogs(f.ctx, jobs[0].ID, 0, -1, -1, 0)
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.True(t, bytes.Equal(data, got[0].Data), "5 MiB chunk differs after the round trip")
		}},
		{"returned data is a copy", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 1)
			data := []byte("abc")
			_, err := s.AppendLog(f.ctx, ci.LogChunk{JobID: jobs[0].ID, Data: data})
			require.NoError(t, err)
			data[0] = 'X'
			got, err := s.ReadLogs(f.ctx, jobs[0].ID, -1, -1, -1, 0)
			require.NoError(t, err)
			got[0].Data[1] = 'Y'
			again, err := s.ReadLogs(f.ctx, jobs[0].ID, -1, -1, -1, 0)
			require.NoError(t, err)
			require.Equal(t, "abc", string(again[0].Data))
		}},
	}
}
