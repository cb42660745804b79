package logs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"testing"
)

// FuzzArchiveReader: a corrupt archive is an error, never a panic or a loop.
func FuzzArchiveReader(f *testing.F) {
	f.Add([]byte(archiveMagic + "\x02{}\x01\x00\x00\x03abc\x00"))
	f.Add([]byte(archiveMagic + "\x02{}\x01\x00\x00\xff\xff\xff\xff\x0fabc"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(raw)
		_ = zw.Close()
		ar, err := openArchive(&gz)
		if err != nil {
			return
		}
		for range len(raw) + 1 {
			f, err := ar.next()
			if err != nil {
				if !errors.Is(err, io.EOF) && err.Error() == "" {
					t.Fatal("empty error")
				}
				return
			}
			if f.size < 0 || f.attempt < 1 || f.step < 0 || f.seq < 0 {
				t.Fatalf("invalid frame %+v", f)
			}
		}
		t.Fatalf("more frames than bytes in %q", raw)
	})
}
