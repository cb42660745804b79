package redact

import (
	"io"
	"slices"
)

// holdLimit bounds the bytes a Writer holds back: a run of overlapping
// matches longer than this (a secret repeated back to back without end) is
// masked in several pieces instead of being held whole.
const holdLimit = 64 << 10

// Writer replaces the matches of a Matcher in the bytes written to it and
// passes the result on. It holds back a possible partial match (at most the
// longest pattern) until later bytes decide it; Flush releases it at the end
// of the stream. A Writer is not safe for concurrent use.
type Writer struct {
	m *Matcher
	w io.Writer

	state   int32
	pos     int64  // stream offset after the last byte written
	base    int64  // stream offset of pending[0]
	pending []byte // bytes not yet passed on: [base, pos)
	spans   []span // runs of overlapping matches in pending; sorted, disjoint
	out     []byte // scratch for one Write's output
}

// span is a run of overlapping matches [start, end), in stream offsets.
type span struct{ start, end int64 }

// NewWriter returns a Writer that redacts m's matches on their way to w. A
// nil or empty m passes everything through.
func NewWriter(w io.Writer, m *Matcher) *Writer {
	return &Writer{m: m, w: w}
}

// Write redacts p and passes on what is decided. It reports len(p) written
// unless w fails.
func (r *Writer) Write(p []byte) (int, error) {
	if r.m.Empty() {
		return r.w.Write(p)
	}
	m := r.m
	out := r.out[:0]
	for i := 0; i < len(p); {
		if r.state == 0 && len(r.pending) == 0 {
			// Nothing is held: copy the bytes that cannot start a pattern.
			j := i
			for j < len(p) && m.root[p[j]] == 0 {
				j++
			}
			out = append(out, p[i:j]...)
			r.pos += int64(j - i)
			r.base = r.pos
			if i = j; i == len(p) {
				break
			}
		}
		c := p[i]
		i++
		r.state = m.step(r.state, c)
		r.pos++
		if l := m.match[r.state]; l > 0 {
			r.pending = append(r.pending, c)
			r.addSpan(r.pos-int64(l), r.pos)
			out = r.release(out, false)
			continue
		}
		if len(r.spans) > 0 {
			r.pending = append(r.pending, c)
			out = r.release(out, false)
			continue
		}
		// No match is open: hold only the state's partial match.
		keep := int(m.depth[r.state])
		if keep == 0 {
			out = append(out, r.pending...)
			out = append(out, c)
			r.pending = r.pending[:0]
			r.base = r.pos
			continue
		}
		r.pending = append(r.pending, c)
		if n := len(r.pending) - keep; n > 0 {
			out = append(out, r.pending[:n]...)
			r.pending = r.pending[n:] // append reallocates now and then: amortised O(1)
			r.base += int64(n)
		}
	}
	r.out = out[:0]
	if len(out) == 0 {
		return len(p), nil
	}
	if _, err := r.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// addSpan adds the match [s, e); e is the largest end so far, so it merges
// with the spans at the end that it overlaps.
func (r *Writer) addSpan(s, e int64) {
	for n := len(r.spans); n > 0 && r.spans[n-1].end > s; n-- {
		s = min(s, r.spans[n-1].start)
		r.spans = r.spans[:n-1]
	}
	r.spans = append(r.spans, span{s, e})
}

// release appends to out the held bytes that are decided (all of them when
// final) and drops them.
func (r *Writer) release(out []byte, final bool) []byte {
	// No match can start before safe: the automaton's state is the longest
	// suffix of the stream that may still grow into a pattern.
	safe := r.pos - int64(r.m.depth[r.state])
	cut, k := safe, 0
	if final {
		cut = r.pos
	}
	for ; k < len(r.spans); k++ {
		sp := r.spans[k]
		if !final && sp.end > safe {
			// A later match may still overlap this run: hold it.
			if sp.start < cut {
				cut = sp.start
			}
			break
		}
	}
	if !final && k < len(r.spans) && r.pos-r.base > holdLimit+int64(r.m.maxLen) && r.spans[k].start < safe {
		// A run of overlapping matches too long to hold (a secret repeated
		// back to back): mask what is decided of it now; the rest of the
		// run gets a mask of its own.
		r.spans = slices.Insert(r.spans, k, span{r.spans[k].start, safe})
		r.spans[k+1].start = safe
		cut = safe
	}
	if cut <= r.base {
		return out
	}
	at := r.base
	done := 0
	for _, sp := range r.spans {
		if sp.end > cut {
			break
		}
		out = append(out, r.pending[at-r.base:sp.start-r.base]...)
		out = append(out, Mask...)
		at = sp.end
		done++
	}
	out = append(out, r.pending[at-r.base:cut-r.base]...)
	r.spans = r.spans[:copy(r.spans, r.spans[done:])]
	r.pending = r.pending[cut-r.base:]
	r.base = cut
	return out
}

// Flush passes on the held bytes (they are no match: the stream ends) and
// resets the Writer, so a secret cannot straddle a flush.
func (r *Writer) Flush() error {
	if r.m.Empty() || len(r.pending) == 0 {
		r.state = 0
		return nil
	}
	out := r.release(r.out[:0], true)
	r.state = 0
	r.spans = r.spans[:0]
	r.out = out[:0]
	if len(out) == 0 {
		return nil
	}
	_, err := r.w.Write(out)
	return err
}
