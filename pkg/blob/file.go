package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kraken-go/kk/pkg/ci"
)

// tmpDir is the directory of the file store's temporary files. Its name is
// not a valid first key segment of any user of the store (keys start with
// artifacts/, caches/, logs/), and List skips it.
const tmpDir = ".tmp"

// FileStore keeps blobs as files under a directory: key a/b/c is the file
// DIR/a/b/c. Writes go to a temporary file in DIR/.tmp that is synced and
// renamed over the key, so readers see the old blob or the new one, never a
// part of it, also after a crash.
type FileStore struct {
	dir string
}

var _ Store = (*FileStore)(nil)

// OpenDir opens (creating it) the directory store at dir.
func OpenDir(dir string) (*FileStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob dir %q: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), 0o700); err != nil {
		return nil, fmt.Errorf("create blob dir: %w", err)
	}
	return &FileStore{dir: abs}, nil
}

// String implements Store.
func (s *FileStore) String() string { return "file://" + s.dir }

// path maps a validated key to its file.
func (s *FileStore) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	if key == tmpDir || strings.HasPrefix(key, tmpDir+"/") {
		return "", fmt.Errorf("blob key %q: %s/ is reserved for temporary files: %w", key, tmpDir, ci.ErrInvalid)
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

// Put implements Store.
func (s *FileStore) Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error) {
	p, err := s.path(key)
	if err != nil {
		return Info{}, fmt.Errorf("put blob: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Join(s.dir, tmpDir), "put-*")
	if err != nil {
		return Info{}, fmt.Errorf("put blob %s: %w", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, ctxReader{ctx: ctx, r: newSizedReader(r, size)})
	if err != nil {
		return Info{}, fmt.Errorf("put blob %s: write: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("put blob %s: sync: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("put blob %s: close: %w", key, err)
	}
	// A concurrent Delete may remove the (empty) directory between MkdirAll
	// and Rename: then both are tried again.
	for try := 0; ; try++ {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return Info{}, fmt.Errorf("put blob %s: %w", key, fileErr(err))
		}
		err := os.Rename(tmp.Name(), p)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || try >= 3 {
			return Info{}, fmt.Errorf("put blob %s: %w", key, fileErr(err))
		}
	}
	committed = true
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, fmt.Errorf("put blob %s: %w", key, err)
	}
	if n != fi.Size() {
		return Info{}, fmt.Errorf("put blob %s: wrote %d bytes, file has %d", key, n, fi.Size())
	}
	return Info{Key: key, Size: fi.Size(), Modified: fi.ModTime().UTC()}, nil
}

// fileErr marks errors that come from the key (a name too long for the file
// system, a key below another key's file) as invalid input.
func fileErr(err error) error {
	if errors.Is(err, syscall.ENAMETOOLONG) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %w", err, ci.ErrInvalid)
	}
	return err
}

// Get implements Store.
func (s *FileStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, fmt.Errorf("get blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", key, notFound(err))
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("get blob %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("get blob %s: not a blob (a prefix of other keys): %w", key, ci.ErrNotFound)
	}
	return f, nil
}

// Stat implements Store.
func (s *FileStore) Stat(ctx context.Context, key string) (Info, error) {
	p, err := s.path(key)
	if err != nil {
		return Info{}, fmt.Errorf("stat blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, fmt.Errorf("stat blob %s: %w", key, notFound(err))
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("stat blob %s: not a blob (a prefix of other keys): %w", key, ci.ErrNotFound)
	}
	return Info{Key: key, Size: fi.Size(), Modified: fi.ModTime().UTC()}, nil
}

// Delete implements Store. Directories left empty are removed up to the
// store's root, so deleted prefixes do not pile up.
func (s *FileStore) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a prefix, not a blob
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	for d := filepath.Dir(p); d != s.dir && strings.HasPrefix(d, s.dir); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break // not empty (or in use by a concurrent Put): keep it
		}
	}
	return nil
}

// List implements Store.
func (s *FileStore) List(ctx context.Context, prefix string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		if err := validatePrefix(prefix); err != nil {
			yield(Info{}, err)
			return
		}
		// Walk the deepest directory that holds every match.
		root := s.dir
		if i := strings.LastIndex(prefix, "/"); i >= 0 {
			root = filepath.Join(s.dir, filepath.FromSlash(prefix[:i]))
		}
		stop := errors.New("stop")
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == root {
					return nil
				}
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rel, err := filepath.Rel(s.dir, p)
			if err != nil {
				return err
			}
			key := filepath.ToSlash(rel)
			if d.IsDir() {
				if key == tmpDir {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
				return nil
			}
			fi, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
			if !yield(Info{Key: key, Size: fi.Size(), Modified: fi.ModTime().UTC()}, nil) {
				return stop
			}
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			yield(Info{}, fmt.Errorf("list blobs %q: %w", prefix, err))
		}
	}
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %w", err, ci.ErrNotFound)
	}
	return fileErr(err)
}

// ctxReader fails reads once ctx is done, so a long copy stops on cancel.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
