package server

import (
	"errors"
	"io"
)

// errRangeDone stops a log stream once a range read has all its bytes.
var errRangeDone = errors.New("log range complete")

// rangeWriter passes on the bytes [skip, skip+left) of what is written to it
// (left < 0: no end) and fails with errRangeDone once it has them, so that
// the stream stops reading. It keeps nothing: a range of a huge log costs
// the server a read up to the range's end, in constant memory.
type rangeWriter struct {
	w    io.Writer
	skip int64
	left int64
}

func (r *rangeWriter) Write(p []byte) (int, error) {
	n := len(p)
	if r.skip > 0 {
		if int64(len(p)) <= r.skip {
			r.skip -= int64(len(p))
			return n, nil
		}
		p = p[r.skip:]
		r.skip = 0
	}
	if r.left == 0 {
		return n, errRangeDone
	}
	if r.left > 0 && int64(len(p)) > r.left {
		p = p[:r.left]
	}
	if _, err := r.w.Write(p); err != nil {
		return 0, err
	}
	if r.left > 0 {
		r.left -= int64(len(p))
		if r.left == 0 {
			return n, errRangeDone
		}
	}
	return n, nil
}

// Flush passes a flush on (a follow from an offset flushes every batch).
func (r *rangeWriter) Flush() {
	if f, ok := r.w.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// tailWriter keeps the last len(buf) bytes written to it, and counts them
// all: the tail of a log costs the server one read and len(buf) bytes.
type tailWriter struct {
	buf   []byte
	start int // index of the oldest byte once full
	full  bool
	total int64
}

func newTailWriter(n int) *tailWriter { return &tailWriter{buf: make([]byte, 0, n)} }

func (t *tailWriter) Write(p []byte) (int, error) {
	n := len(p)
	t.total += int64(n)
	c := cap(t.buf)
	if c == 0 {
		return n, nil
	}
	if len(p) >= c {
		t.buf = append(t.buf[:0], p[len(p)-c:]...)
		t.start, t.full = 0, true
		return n, nil
	}
	for len(p) > 0 {
		if !t.full {
			k := min(len(p), c-len(t.buf))
			t.buf = append(t.buf, p[:k]...)
			p = p[k:]
			if len(t.buf) == c {
				t.full = true
			}
			continue
		}
		k := copy(t.buf[t.start:], p)
		p = p[k:]
		t.start = (t.start + k) % c
	}
	return n, nil
}

// Bytes returns the kept bytes, oldest first.
func (t *tailWriter) Bytes() []byte {
	if !t.full {
		return t.buf
	}
	out := make([]byte, 0, len(t.buf))
	out = append(out, t.buf[t.start:]...)
	return append(out, t.buf[:t.start]...)
}

// Offset is the position in the log of the first kept byte.
func (t *tailWriter) Offset() int64 { return t.total - int64(len(t.buf)) }
