// Package blob stores the large objects of kkd: artifacts, cache archives and
// archived job logs. One interface, Store, has two implementations, chosen by
// the scheme of the storage URL (Open):
//
//   - file://PATH: a directory (the default, in the data dir); writes go to a
//     temporary file that is renamed over the key, so a reader never sees a
//     partial blob;
//   - s3://[ACCESS:SECRET@]HOST[:PORT]/BUCKET[?secure=false&region=R]: any S3
//     API (MinIO, AWS S3) through minio-go. Credentials come from the URL or
//     from the environment (KKD_S3_ACCESS_KEY/KKD_S3_SECRET_KEY, else
//     AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); the bucket is created when it
//     does not exist.
//
// Contract of every Store:
//   - Keys are relative slash-separated paths (ValidateKey): no empty, "." or
//     ".." segment, no leading or trailing slash, no backslash or NUL, at most
//     MaxKeyLen bytes. Every method rejects another key with ci.ErrInvalid.
//   - Put streams: memory use does not grow with the blob's size. It is
//     atomic: after an error (including a reader error or a size mismatch)
//     the key holds what it held before, never part of the new blob; after
//     success it holds exactly the new bytes. A Put over an existing key
//     replaces it.
//   - Get and Stat of a missing key return an error wrapping ci.ErrNotFound.
//     Delete of a missing key succeeds.
//   - Methods are safe for concurrent use and honour ctx.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
)

// MaxKeyLen is the longest key a Store accepts (the S3 limit).
const MaxKeyLen = 1024

// Info describes a stored blob.
type Info struct {
	Key      string
	Size     int64
	Modified time.Time
}

// Store is a blob store (see the package comment for the contract).
type Store interface {
	// Put stores the bytes of r under key. size is the number of bytes r
	// yields, or -1 when unknown; a known size that r does not match exactly
	// is an error (ci.ErrInvalid) and nothing is stored. It returns the
	// stored blob's Info.
	Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error)
	// Get opens the blob for reading; the caller closes it.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes the blob.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the blob; a missing key is no error.
	Delete(ctx context.Context, key string) error
	// List yields the blobs whose key starts with prefix (a key prefix, not
	// only a directory), in no particular order. It stops at the first error,
	// which it yields.
	List(ctx context.Context, prefix string) iter.Seq2[Info, error]
	// String describes the store for logs, without credentials.
	String() string
}

// Env reads environment variables (os.Getenv in production).
type Env func(key string) string

// Open opens the store a storage URL names, reading S3 credentials that are
// not in the URL from the process environment.
func Open(ctx context.Context, storage string) (Store, error) {
	return OpenEnv(ctx, storage, os.Getenv)
}

// OpenEnv is Open with the environment given by env.
func OpenEnv(ctx context.Context, storage string, env Env) (Store, error) {
	u, err := url.Parse(storage)
	if err != nil {
		return nil, fmt.Errorf("storage URL: %w: use file://PATH or s3://HOST:PORT/BUCKET: %w", redactErr(err), ci.ErrInvalid)
	}
	switch u.Scheme {
	case "file":
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("storage URL %q: a file URL takes only a path (file:///abs/dir or file://relative/dir): %w", Redact(storage), ci.ErrInvalid)
		}
		dir := u.Host + u.Path
		if dir == "" {
			return nil, fmt.Errorf("storage URL %q has no path: use file:///abs/dir or file://relative/dir: %w", storage, ci.ErrInvalid)
		}
		return OpenDir(dir)
	case "s3":
		cfg, err := parseS3(u, env)
		if err != nil {
			return nil, fmt.Errorf("storage URL %q: %w", Redact(storage), err)
		}
		return OpenS3(ctx, cfg)
	case "":
		return nil, fmt.Errorf("storage URL %q has no scheme: use file://PATH or s3://HOST:PORT/BUCKET: %w", Redact(storage), ci.ErrInvalid)
	}
	return nil, fmt.Errorf("storage URL %q: unknown scheme %q: use file://PATH or s3://HOST:PORT/BUCKET: %w", Redact(storage), u.Scheme, ci.ErrInvalid)
}

// Redact returns the storage URL with its secret replaced, for logs and errors.
func Redact(storage string) string {
	u, err := url.Parse(storage)
	if err != nil {
		return "(unparsable storage URL)"
	}
	if u.User == nil {
		return storage
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// redactErr drops the URL from a url.Parse error (it may hold a secret).
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// ValidateKey checks that key is a relative slash-separated path that every
// Store can hold safely (see the package comment).
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("blob key is empty: %w", ci.ErrInvalid)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("blob key is %d bytes long, more than %d: %w", len(key), MaxKeyLen, ci.ErrInvalid)
	case strings.ContainsAny(key, "\x00\\"):
		return fmt.Errorf("blob key %q contains a NUL or a backslash: %w", key, ci.ErrInvalid)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("blob key %q has an empty segment (leading, trailing or double slash): %w", key, ci.ErrInvalid)
		case ".", "..":
			return fmt.Errorf("blob key %q has a %q segment: %w", key, seg, ci.ErrInvalid)
		}
	}
	return nil
}

// validatePrefix checks a List prefix: "" (everything) or a key prefix.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	// A prefix ending in "/" names a directory; check it as a key without it.
	if err := ValidateKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("list prefix: %w", err)
	}
	return nil
}

// sizedReader yields r's bytes and fails unless there are exactly size of
// them (size >= 0). It reports the failure as the read error, so a store
// aborts the write instead of committing a blob of the wrong length.
type sizedReader struct {
	r    io.Reader
	left int64
	size int64
}

func newSizedReader(r io.Reader, size int64) io.Reader {
	if size < 0 {
		return r
	}
	return &sizedReader{r: r, left: size, size: size}
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if s.left == 0 {
		// Probe: the reader must be at its end.
		var one [1]byte
		n, err := io.ReadFull(s.r, one[:])
		if n > 0 {
			return 0, fmt.Errorf("blob has more than the announced %d bytes: %w", s.size, ci.ErrInvalid)
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	if errors.Is(err, io.EOF) {
		if s.left > 0 {
			return n, fmt.Errorf("blob has %d bytes, fewer than the announced %d: %w", s.size-s.left, s.size, ci.ErrInvalid)
		}
		err = nil // the probe on the next call confirms the end
	}
	return n, err
}
