package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// spoolDir is the directory under the data dir that holds one spool per job
// attempt: spool/<job id>-<attempt>/.
const spoolDir = "spool"

// DefaultSpoolSegmentSize is the size at which a spool starts a new segment
// file. Delivered segments are deleted, so a spool's disk use shrinks while
// its backlog is delivered.
const DefaultSpoolSegmentSize = 8 << 20

// maxRecordData bounds one record's payload as read back from disk; larger
// lengths mean a corrupt spool (chunks are LogChunkSize, results are small).
const maxRecordData = 64 << 20

// recordKind is the kind of a spooled write.
type recordKind uint8

const (
	recStart    recordKind = iota + 1 // POST start
	recStep                           // POST steps/{idx}: data is the api.StepResult JSON
	recLog                            // POST steps/{idx}/logs?seq=: data is the chunk
	recComplete                       // POST complete: data is the api.CompleteJob JSON
)

func (k recordKind) String() string {
	switch k {
	case recStart:
		return "job start"
	case recStep:
		return "step result"
	case recLog:
		return "log chunk"
	case recComplete:
		return "job end"
	}
	return "record kind " + strconv.Itoa(int(k))
}

// record is one write about a job attempt, in the order the job made it.
type record struct {
	kind recordKind
	step int
	seq  int64
	data []byte
}

// On disk a record is a fixed header followed by its data:
//
//	kind u8 | step u32 | seq u64 | len u32 | data[len]     (big endian)
const recordHeaderSize = 1 + 4 + 8 + 4

// spool is the on-disk FIFO of one job attempt's writes to kkd, in
// <data dir>/spool/<job>-<attempt>/. Records are appended to numbered segment
// files (000000.seg, 000001.seg, ...), each append followed by fsync, so a
// segment only ever grows by whole records. One reader (the outbox's sender)
// takes the records in append order with next and drops each with ack once kkd
// acknowledged it; a segment whose records are all delivered is deleted.
// Memory use is one record, whatever the backlog.
//
// When the disk fails (full, read-only, I/O error), control records (start,
// step results, completion: all small) are kept in memory instead, queued
// after the ones on disk, so they still arrive in order; log records are
// refused (append returns the error) until that memory backlog is delivered.
//
// append may be called from several goroutines; next and ack from one.
type spool struct {
	dir     string
	segSize int64

	wmu sync.Mutex // serialises appends; guards w and wbuf
	w   *os.File   // current write segment; nil when the disk failed
	// wbuf holds a record being written, reused between appends.
	wbuf []byte

	mu      sync.Mutex
	wseg    int64           // write segment number
	woff    int64           // end of the last whole record in wseg
	ends    map[int64]int64 // final sizes of the segments before wseg
	rseg    int64           // read position: segment...
	roff    int64           // ...and offset of the next record
	mem     []record        // records kept in memory after a disk failure
	closed  bool            // no more appends
	changed chan struct{}   // closed and replaced on every append and on close
	diskErr error           // why the disk is not used, when it is not

	// Reader state (only the reader goroutine touches it).
	r       *os.File
	rsegNum int64
	peeked  int64 // size on disk of the record next returned, -1 for a memory record
}

// openSpool creates the spool directory dir (removing any earlier content)
// and its first segment. When that fails it returns the error together with a
// spool that keeps control records in memory, so the job can still report.
func openSpool(dir string, segSize int64) (*spool, error) {
	if segSize <= 0 {
		segSize = DefaultSpoolSegmentSize
	}
	s := &spool{dir: dir, segSize: segSize, ends: map[int64]int64{}, changed: make(chan struct{}), rsegNum: -1}
	err := os.RemoveAll(dir)
	if err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	if err == nil {
		s.w, err = createSegment(dir, 0)
	}
	if err != nil {
		s.diskErr = err
		return s, fmt.Errorf("create job spool %s: %w", dir, err)
	}
	return s, nil
}

func segmentPath(dir string, n int64) string {
	return filepath.Join(dir, fmt.Sprintf("%06d.seg", n))
}

func createSegment(dir string, n int64) (*os.File, error) {
	return os.OpenFile(segmentPath(dir, n), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
}

// notifyLocked wakes the reader; s.mu must be held.
func (s *spool) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// errSpoolClosed: append after close.
var errSpoolClosed = errors.New("job spool is closed")

// append adds rec at the end of the spool. It fails only for a log record
// that could not be written to disk (or after close).
func (s *spool) append(rec record) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	closed, memBacklog, diskErr := s.closed, len(s.mem) > 0, s.diskErr
	s.mu.Unlock()
	if closed {
		return errSpoolClosed
	}
	if s.w != nil && !memBacklog {
		err := s.writeDisk(rec)
		if err == nil {
			return nil
		}
		diskErr = err
	}
	if rec.kind == recLog {
		if memBacklog {
			return fmt.Errorf("write job spool: records wait in memory since a write failed: %w", diskErr)
		}
		return fmt.Errorf("write job spool: %w", diskErr)
	}
	rec.data = append([]byte(nil), rec.data...)
	s.mu.Lock()
	s.diskErr = diskErr
	s.mem = append(s.mem, rec)
	s.notifyLocked()
	s.mu.Unlock()
	return nil
}

// writeDisk appends rec to the write segment, starting a new segment when the
// current one is full, and syncs it. On failure the segment is cut back to
// its last whole record. s.wmu must be held.
func (s *spool) writeDisk(rec record) error {
	s.mu.Lock()
	wseg, woff := s.wseg, s.woff
	s.mu.Unlock()
	if woff >= s.segSize {
		next, err := createSegment(s.dir, wseg+1)
		if err != nil {
			return err
		}
		if err := s.w.Close(); err != nil {
			_ = next.Close()
			_ = os.Remove(segmentPath(s.dir, wseg+1))
			return err
		}
		s.w = next
		s.mu.Lock()
		s.ends[wseg] = woff
		s.wseg, s.woff = wseg+1, 0
		s.mu.Unlock()
		woff = 0
	}
	n := recordHeaderSize + len(rec.data)
	if cap(s.wbuf) < n {
		s.wbuf = make([]byte, n)
	}
	buf := s.wbuf[:n]
	buf[0] = byte(rec.kind)
	binary.BigEndian.PutUint32(buf[1:], uint32(rec.step))
	binary.BigEndian.PutUint64(buf[5:], uint64(rec.seq))
	binary.BigEndian.PutUint32(buf[13:], uint32(len(rec.data)))
	copy(buf[recordHeaderSize:], rec.data)
	_, err := s.w.Write(buf)
	if err == nil {
		err = s.w.Sync()
	}
	if err != nil {
		_ = s.w.Truncate(woff)
		return err
	}
	s.mu.Lock()
	s.woff = woff + int64(n)
	s.notifyLocked()
	s.mu.Unlock()
	return nil
}

// close ends appending: next returns io.EOF once every record was acked.
func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.notifyLocked()
	}
}

// next waits for the oldest record not yet acked and returns it; it returns
// it again until ack is called. It returns io.EOF when the spool is closed
// and everything was acked, ctx's error when ctx ends first, and another
// error when the spool cannot be read back.
func (s *spool) next(ctx context.Context) (record, error) {
	for {
		s.mu.Lock()
		// Step over segments that were read to their end, deleting them.
		for s.rseg < s.wseg && s.roff >= s.ends[s.rseg] {
			delete(s.ends, s.rseg)
			s.dropReadSegment(s.rseg)
			s.rseg++
			s.roff = 0
		}
		onDisk := s.rseg < s.wseg || s.roff < s.woff
		rseg, roff := s.rseg, s.roff
		var memRec *record
		if !onDisk && len(s.mem) > 0 {
			memRec = &s.mem[0]
		}
		done := s.closed && !onDisk && len(s.mem) == 0
		ch := s.changed
		s.mu.Unlock()
		switch {
		case onDisk:
			return s.readDisk(rseg, roff)
		case memRec != nil:
			s.peeked = -1
			return *memRec, nil
		case done:
			return record{}, io.EOF
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return record{}, ctx.Err()
		}
	}
}

// dropReadSegment closes and deletes a fully delivered segment.
func (s *spool) dropReadSegment(n int64) {
	if s.r != nil && s.rsegNum == n {
		_ = s.r.Close()
		s.r, s.rsegNum = nil, -1
	}
	_ = os.Remove(segmentPath(s.dir, n))
}

// readDisk reads the record at (seg, off).
func (s *spool) readDisk(seg, off int64) (record, error) {
	if s.r == nil || s.rsegNum != seg {
		if s.r != nil {
			_ = s.r.Close()
		}
		f, err := os.Open(segmentPath(s.dir, seg))
		if err != nil {
			s.r, s.rsegNum = nil, -1
			return record{}, fmt.Errorf("read job spool: %w", err)
		}
		s.r, s.rsegNum = f, seg
	}
	var hdr [recordHeaderSize]byte
	if _, err := s.r.ReadAt(hdr[:], off); err != nil {
		return record{}, fmt.Errorf("read job spool %s at %d: %w", s.r.Name(), off, err)
	}
	rec := record{
		kind: recordKind(hdr[0]),
		step: int(int32(binary.BigEndian.Uint32(hdr[1:]))),
		seq:  int64(binary.BigEndian.Uint64(hdr[5:])),
	}
	n := binary.BigEndian.Uint32(hdr[13:])
	if rec.kind < recStart || rec.kind > recComplete || n > maxRecordData {
		return record{}, fmt.Errorf("read job spool %s at %d: corrupt record header", s.r.Name(), off)
	}
	rec.data = make([]byte, n)
	if _, err := s.r.ReadAt(rec.data, off+recordHeaderSize); err != nil {
		return record{}, fmt.Errorf("read job spool %s at %d: %w", s.r.Name(), off, err)
	}
	s.peeked = recordHeaderSize + int64(n)
	return rec, nil
}

// ack drops the record next returned last.
func (s *spool) ack() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peeked < 0 {
		if len(s.mem) > 0 {
			s.mem[0] = record{}
			s.mem = s.mem[1:]
		}
		if len(s.mem) == 0 {
			s.mem = nil
		}
	} else {
		s.roff += s.peeked
	}
	s.peeked = 0
}

// memLen is the number of records held in memory.
func (s *spool) memLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mem)
}

// remove closes the spool's files and deletes its directory.
func (s *spool) remove() error {
	s.close()
	s.wmu.Lock()
	if s.w != nil {
		_ = s.w.Close()
		s.w = nil
	}
	s.wmu.Unlock()
	if s.r != nil {
		_ = s.r.Close()
		s.r = nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove job spool: %w", err)
	}
	return nil
}

// cleanSpools deletes the spools left in dataDir by an earlier kkagent
// process that ended without delivering them (it crashed or was killed).
// Their attempts are stale by construction: kkd requeues a job whose agent
// comes back without it, so nothing of them is sent. It must run while the
// data dir's lock is held.
func cleanSpools(dataDir string, log *slog.Logger) {
	root := filepath.Join(dataDir, spoolDir)
	entries, err := os.ReadDir(root)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("cannot list leftover job spools", "dir", root, "err", err)
		}
		return
	}
	for _, e := range entries {
		path := filepath.Join(root, e.Name())
		var size int64
		_ = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					size += fi.Size()
				}
			}
			return nil
		})
		attrs := []any{"spool", path, "undelivered_bytes", size}
		if job, attempt, ok := strings.Cut(e.Name(), "-"); ok {
			attrs = append(attrs, "job_id", job, "attempt", attempt)
		}
		if err := os.RemoveAll(path); err != nil {
			log.Error("cannot delete a leftover job spool; delete it by hand", append(attrs, "err", err)...)
			continue
		}
		log.Warn("deleted the spool of a job attempt left by an earlier kkagent process: "+
			"that attempt is stale (kkd requeues the job), so nothing of it is sent", attrs...)
	}
}
