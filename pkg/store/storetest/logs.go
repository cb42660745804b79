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

// claimed creates a queued job of steps steps and claims it for a new agent.
func (f *fx) claimed(steps int) ci.Job {
	f.t.Helper()
	_, jobs := f.queued(1, steps)
	return f.claim(jobs[0].ID, f.agent(f.unique("agent"), true).ID)
}

// chunk is a chunk of job j's current attempt.
func chunk(j ci.Job, step int, seq int64, data string) ci.LogChunk {
	return ci.LogChunk{JobID: j.ID, Attempt: j.Attempt, Step: step, Seq: seq, Data: []byte(data)}
}

// readAll reads the job's whole log.
func (f *fx) readAll(jobID int64) []ci.LogChunk {
	f.t.Helper()
	got, err := f.s.ReadLogs(f.ctx, jobID, -1, -1, store.LogPos{}, 0)
	require.NoError(f.t, err)
	return got
}

func logCases() []testCase {
	return []testCase{
		{"append is idempotent", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			c := chunk(j, 0, 0, "first\n")
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

			got := f.readAll(j.ID)
			require.Len(t, got, 1)
			require.Equal(t, "first\n", string(got[0].Data), "the first chunk stands")
			require.Equal(t, j.Attempt, got[0].Attempt)
		}},
		{"append to a missing job", func(t *testing.T, s store.Store) {
			_, err := s.AppendLog(t.Context(), ci.LogChunk{JobID: 42, Attempt: 1, Data: []byte("x")})
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"invalid position or attempt", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			tests := []struct {
				name  string
				chunk ci.LogChunk
			}{
				{"negative step", ci.LogChunk{JobID: j.ID, Attempt: 1, Step: -1}},
				{"negative seq", ci.LogChunk{JobID: j.ID, Attempt: 1, Seq: -1}},
				{"no attempt", ci.LogChunk{JobID: j.ID}},
				{"negative attempt", ci.LogChunk{JobID: j.ID, Attempt: -1}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					_, err := s.AppendLog(f.ctx, tc.chunk)
					require.ErrorIs(t, err, ci.ErrInvalid)
				})
			}
			require.Empty(t, f.readAll(j.ID))
		}},
		{"append is fenced by attempt", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(1, 1)
			queued := f.job(jobs[0].ID)
			_, err := s.AppendLog(f.ctx, ci.LogChunk{JobID: queued.ID, Attempt: 1, Data: []byte("x")})
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "a queued job has no running attempt")

			a1, a2 := f.agent("a1", true), f.agent("a2", true)
			first := f.claim(queued.ID, a1.ID)
			f.append(chunk(first, 0, 0, "one\n"))
			f.fail(first, true)
			tests := []struct {
				name    string
				attempt int
			}{
				{"requeued attempt", first.Attempt},
				{"future attempt", first.Attempt + 1},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					_, err := s.AppendLog(f.ctx, ci.LogChunk{JobID: first.ID, Attempt: tc.attempt, Step: 0, Seq: 1, Data: []byte("late\n")})
					require.ErrorIs(t, err, ci.ErrStaleAttempt)
				})
			}

			second := f.claim(first.ID, a2.ID)
			require.Equal(t, first.Attempt+1, second.Attempt)
			_, err = s.AppendLog(f.ctx, chunk(first, 0, 1, "stale\n"))
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "the old attempt stays fenced after the new claim")
			_, err = s.AppendLog(f.ctx, chunk(first, 0, 0, "one\n"))
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "even a chunk it had sent before")
			f.append(chunk(second, 0, 0, "two\n"))

			got := f.readAll(first.ID)
			require.Len(t, got, 2, "every attempt keeps its log")
			require.Equal(t, []string{"one\n", "two\n"}, []string{string(got[0].Data), string(got[1].Data)})
			require.Equal(t, []int{first.Attempt, second.Attempt}, []int{got[0].Attempt, got[1].Attempt})
		}},
		{"append after completion", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			f.append(chunk(j, 0, 0, "done\n"))
			_, _, err := s.CompleteJob(f.ctx, j.ID, j.Attempt, ci.JobOK, "", now())
			require.NoError(t, err)

			inserted, err := s.AppendLog(f.ctx, chunk(j, 0, 0, "done\n"))
			require.NoError(t, err, "a retry of a stored chunk of the completing attempt is a no-op")
			require.False(t, inserted)
			_, err = s.AppendLog(f.ctx, chunk(j, 0, 1, "too late\n"))
			require.ErrorIs(t, err, ci.ErrStaleAttempt, "a new chunk after the completion is stale")
			_, err = s.AppendLog(f.ctx, ci.LogChunk{JobID: j.ID, Attempt: j.Attempt + 1, Data: []byte("x")})
			require.ErrorIs(t, err, ci.ErrStaleAttempt)
			require.Len(t, f.readAll(j.ID), 1)
		}},
		{"read order, cursor, filters and limit", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, jobs := f.queued(2, 3)
			a1, a2 := f.agent("a1", true), f.agent("a2", true)
			// Attempt 1 writes steps 0 and 1, attempt 2 steps 0 and 2, out of
			// order, as retries and background steps may do.
			first := f.claim(jobs[0].ID, a1.ID)
			for _, p := range [][2]int64{{1, 1}, {0, 2}, {0, 0}, {1, 0}, {0, 1}, {0, 10}} {
				f.append(chunk(first, int(p[0]), p[1], fmt.Sprintf("1.%d.%d", p[0], p[1])))
			}
			f.fail(first, true)
			second := f.claim(jobs[0].ID, a2.ID)
			for _, p := range [][2]int64{{2, 0}, {0, 1}, {0, 0}} {
				f.append(chunk(second, int(p[0]), p[1], fmt.Sprintf("2.%d.%d", p[0], p[1])))
			}
			other := f.claim(jobs[1].ID, a1.ID)
			f.append(chunk(other, 0, 0, "other"))
			id := first.ID

			tests := []struct {
				name    string
				attempt int
				step    int
				after   store.LogPos
				limit   int
				want    []string
			}{
				{"all", -1, -1, store.LogPos{}, 0, []string{"1.0.0", "1.0.1", "1.0.2", "1.0.10", "1.1.0", "1.1.1", "2.0.0", "2.0.1", "2.2.0"}},
				{"start of attempt 2", -1, -1, store.LogPos{Attempt: 2, Step: -1, Seq: -1}, 0, []string{"2.0.0", "2.0.1", "2.2.0"}},
				{"limit", -1, -1, store.LogPos{}, 2, []string{"1.0.0", "1.0.1"}},
				{"after a chunk", -1, -1, store.LogPos{Attempt: 1, Step: 0, Seq: 1}, 0, []string{"1.0.2", "1.0.10", "1.1.0", "1.1.1", "2.0.0", "2.0.1", "2.2.0"}},
				{"after the last chunk of an attempt", -1, -1, store.LogPos{Attempt: 1, Step: 1, Seq: 1}, 0, []string{"2.0.0", "2.0.1", "2.2.0"}},
				{"cursor with limit", -1, -1, store.LogPos{Attempt: 1, Step: 0, Seq: 2}, 3, []string{"1.0.10", "1.1.0", "1.1.1"}},
				{"one attempt", 1, -1, store.LogPos{}, 0, []string{"1.0.0", "1.0.1", "1.0.2", "1.0.10", "1.1.0", "1.1.1"}},
				{"one step of every attempt", -1, 0, store.LogPos{}, 0, []string{"1.0.0", "1.0.1", "1.0.2", "1.0.10", "2.0.0", "2.0.1"}},
				{"one step of one attempt after a chunk", 2, 0, store.LogPos{Attempt: 2, Step: 0, Seq: 0}, 0, []string{"2.0.1"}},
				{"one step of one attempt with limit", 1, 0, store.LogPos{}, 1, []string{"1.0.0"}},
				{"one step, cursor past it", 1, 0, store.LogPos{Attempt: 1, Step: 1, Seq: -1}, 0, []string{}},
				{"step without output", 2, 1, store.LogPos{}, 0, []string{}},
				{"attempt without output", 3, -1, store.LogPos{}, 0, []string{}},
				{"at the end", -1, -1, store.LogPos{Attempt: 2, Step: 2, Seq: 0}, 0, []string{}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					got, err := s.ReadLogs(f.ctx, id, tc.attempt, tc.step, tc.after, tc.limit)
					require.NoError(t, err)
					texts := []string{}
					for _, c := range got {
						require.Equal(t, id, c.JobID)
						require.Equal(t, fmt.Sprintf("%d.%d.%d", c.Attempt, c.Step, c.Seq), string(c.Data))
						texts = append(texts, string(c.Data))
					}
					require.Equal(t, tc.want, texts)
				})
			}
		}},
		{"large chunk round trips", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			data := make([]byte, 5<<20)
			_, _ = rand.Read(data)
			data[0], data[len(data)-1] = 0, 0
			inserted, err := s.AppendLog(f.ctx, ci.LogChunk{JobID: j.ID, Attempt: j.Attempt, Step: 0, Seq: 0, Data: data})
			require.NoError(t, err)
			require.True(t, inserted)
			got, err := s.ReadLogs(f.ctx, j.ID, j.Attempt, 0, store.LogPos{}, 0)
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.True(t, bytes.Equal(data, got[0].Data), "5 MiB chunk differs after the round trip")
		}},
		{"returned data is a copy", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			j := f.claimed(1)
			data := []byte("abc")
			_, err := s.AppendLog(f.ctx, ci.LogChunk{JobID: j.ID, Attempt: j.Attempt, Data: data})
			require.NoError(t, err)
			data[0] = 'X'
			got := f.readAll(j.ID)
			got[0].Data[1] = 'Y'
			require.Equal(t, "abc", string(f.readAll(j.ID)[0].Data))
		}},
	}
}

// append stores a chunk and requires it to be new.
func (f *fx) append(c ci.LogChunk) {
	f.t.Helper()
	inserted, err := f.s.AppendLog(f.ctx, c)
	require.NoError(f.t, err)
	require.True(f.t, inserted)
}
