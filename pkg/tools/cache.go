package tools

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
)

// Cache is Kraken's `cache` tool: it saves directories of the workspace
// under a key in kkd and restores them in later jobs. Caches are scoped to
// the project and branch. Parameters:
//
//	action  save or restore (required)
//	key     the cache key; keys: a list of keys (restore tries them in order,
//	        the first one found wins; save stores under key, or the first of keys)
//	paths   list of files or directories to save, relative to cwd (required
//	        for save); they must lie in the workspace
//	cwd     directory the paths are relative to (default: the workspace)
//	expiry  seconds kkd keeps the entry (default: kkd's setting)
//
// The archive is a tar.gz streamed straight to kkd (constant memory); its
// entries are the paths relative to the workspace, so restore puts them back
// where they were, whatever the cwd. Symlinks are stored as symlinks and
// never followed. Restore refuses entries that would land outside the
// workspace (absolute names, "..", links leading out). A key with no entry
// is a cache miss: the step is ok, as in Kraken.
type Cache struct{}

type cacheParams struct {
	save   bool
	keys   []string
	paths  []string
	expiry time.Duration
}

func parseCache(f map[string]any) (cacheParams, error) {
	var p cacheParams
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	action, _, err := String(f, "action")
	add(err)
	switch action {
	case "save":
		p.save = true
	case "restore":
	case "":
		add(errors.New("action is required: save or restore"))
	default:
		add(fmt.Errorf("action: want save or restore, got %q", action))
	}
	key, hasKey, err := String(f, "key")
	add(err)
	keys, err := StringList(f, "keys")
	add(err)
	if hasKey && key != "" {
		p.keys = append(p.keys, key)
	}
	p.keys = append(p.keys, keys...)
	if len(p.keys) == 0 {
		add(errors.New("key or keys is required"))
	}
	for _, k := range p.keys {
		if strings.TrimSpace(k) == "" {
			add(errors.New("keys: a key is empty"))
		}
	}
	p.paths, err = StringList(f, "paths")
	add(err)
	if p.save && err == nil && len(p.paths) == 0 {
		add(errors.New("paths is required for save: the files or directories to cache"))
	}
	p.expiry, _, err = Seconds(f, "expiry")
	add(err)
	_, _, err = String(f, "cwd")
	add(err)
	return p, errors.Join(errs...)
}

// Run saves or restores.
func (Cache) Run(ctx context.Context, env executor.Env, st Step) Result {
	const tool = "cache"
	p, err := parseCache(st.Fields)
	if err != nil {
		return badParams(tool, err)
	}
	if err := st.needServices(tool); err != nil {
		return stepError(ctx, tool, err)
	}
	ws := NewWorkspace(env)
	dir, err := workspaceDirs(ws, st.Fields)
	if err != nil {
		return badParams(tool, err)
	}
	if p.save {
		return cacheSave(ctx, ws, dir, st, p)
	}
	return cacheRestore(ctx, ws, st, p)
}

func cacheSave(ctx context.Context, ws Workspace, dir string, st Step, p cacheParams) Result {
	const tool = "cache"
	var rels []string
	for _, s := range p.paths {
		abs, err := ws.Path(dir, "paths", s)
		if err == nil && !ws.inside(abs) {
			err = fmt.Errorf("paths: %s is outside the job workspace %s; caches hold files of the workspace only", s, ws.Dir)
		}
		if err != nil {
			return badParams(tool, err)
		}
		if _, err := os.Lstat(abs); err != nil {
			fmt.Fprintf(st.Output, "cache: %s does not exist; not saved\n", s)
			continue
		}
		rels = append(rels, ws.rel(abs))
	}
	if len(rels) == 0 {
		return Result{Status: ci.StepOK, Message: "cache: none of the paths exist; nothing saved"}
	}
	key := p.keys[0]
	var files, bytes int64
	open := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			n, b, err := writeCacheArchive(ws, rels, pw)
			files, bytes = n, b
			_ = pw.CloseWithError(err)
		}()
		return &pipeBody{PipeReader: pr, done: done}, nil
	}
	ent, err := st.Services.SaveCache(ctx, key, p.expiry, open)
	if err != nil {
		return stepError(ctx, tool, err)
	}
	msg := fmt.Sprintf("saved %d files (%d bytes) of %s under key %s: %d bytes compressed",
		files, bytes, strings.Join(rels, ", "), key, ent.Size)
	if !ent.Expires.IsZero() {
		msg += ", expires " + ent.Expires.UTC().Format(time.RFC3339)
	}
	fmt.Fprintln(st.Output, "cache: "+msg)
	return Result{Status: ci.StepOK, Message: msg}
}

// pipeBody is the read end of an archive being written; Close stops the
// writer and waits for it.
type pipeBody struct {
	*io.PipeReader
	done chan struct{}
	once sync.Once
}

func (b *pipeBody) Close() error {
	b.once.Do(func() {
		_ = b.PipeReader.CloseWithError(errors.New("upload ended"))
		<-b.done
	})
	return nil
}

// writeCacheArchive writes a tar.gz of the workspace paths rels (relative
// to the workspace) to w. It returns the number of files and their bytes.
func writeCacheArchive(ws Workspace, rels []string, w io.Writer) (files, bytes int64, err error) {
	root, err := ws.root()
	if err != nil {
		return 0, 0, err
	}
	defer root.Close()
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return 0, 0, err
	}
	tw := tar.NewWriter(gz)
	seen := map[string]bool{}
	for _, rel := range rels {
		err := fs.WalkDir(root.FS(), filepath.ToSlash(rel), func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if seen[name] {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			seen[name] = true
			fi, err := root.Lstat(name)
			if err != nil {
				return err
			}
			link := ""
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				if link, err = root.Readlink(name); err != nil {
					return err
				}
			case fi.IsDir(), fi.Mode().IsRegular():
			default:
				return nil // sockets, fifos, devices
			}
			hdr, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			hdr.Name = name
			if fi.IsDir() {
				hdr.Name += "/"
			}
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
			if !fi.Mode().IsRegular() {
				return tw.WriteHeader(hdr)
			}
			f, err := root.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
			if err == nil && n < hdr.Size {
				err = fmt.Errorf("%s shrank while being archived", name)
			}
			files++
			bytes += n
			return err
		})
		if err != nil {
			return files, bytes, fmt.Errorf("archive %s: %w", rel, err)
		}
	}
	if err := tw.Close(); err != nil {
		return files, bytes, err
	}
	return files, bytes, gz.Close()
}

func cacheRestore(ctx context.Context, ws Workspace, st Step, p cacheParams) Result {
	const tool = "cache"
	for _, key := range p.keys {
		var files int64
		hit, err := st.Services.RestoreCache(ctx, key, func(body io.Reader) error {
			n, err := extractCacheArchive(ws, body)
			files = n
			return err
		})
		if err != nil {
			return stepError(ctx, tool, err)
		}
		if hit {
			msg := fmt.Sprintf("restored %d files from key %s", files, key)
			fmt.Fprintln(st.Output, "cache: "+msg)
			return Result{Status: ci.StepOK, Message: msg}
		}
		fmt.Fprintf(st.Output, "cache: no entry under key %s\n", key)
	}
	return Result{Status: ci.StepOK, Message: "cache miss: no entry under " + strings.Join(p.keys, ", ")}
}

// cleanEntryName validates an archive entry's name: relative, no "..", and
// returns it cleaned.
func cleanEntryName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("archive entry %q: absolute or malformed name", name)
	}
	for _, e := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
		if e == ".." {
			return "", fmt.Errorf("archive entry %q leaves the workspace", name)
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// extractCacheArchive unpacks a tar.gz into the workspace, through an
// os.Root: nothing lands outside, not even through symlinks. It returns the
// number of files written.
func extractCacheArchive(ws Workspace, r io.Reader) (int64, error) {
	root, err := ws.root()
	if err != nil {
		return 0, err
	}
	defer root.Close()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return 0, fmt.Errorf("read cache archive: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	var files int64
	type dirTime struct {
		name string
		t    time.Time
	}
	var dirs []dirTime
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return files, fmt.Errorf("read cache archive: %w", err)
		}
		name, err := cleanEntryName(hdr.Name)
		if err != nil {
			return files, err
		}
		if name == "" {
			continue
		}
		mode := fs.FileMode(hdr.Mode) & 0o777
		if parent := path.Dir(name); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return files, fmt.Errorf("restore %s: %w", name, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
				_ = root.Remove(name)
			}
			if err := root.MkdirAll(name, 0o755); err != nil {
				return files, fmt.Errorf("restore %s: %w", name, err)
			}
			_ = root.Chmod(name, mode|0o700)
			dirs = append(dirs, dirTime{name, hdr.ModTime})
		case tar.TypeReg:
			if err := replaceable(root, name); err != nil {
				return files, err
			}
			f, err := root.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode|0o600)
			if err != nil {
				return files, fmt.Errorf("restore %s: %w", name, err)
			}
			_, err = io.Copy(f, tr)
			if err == nil {
				err = f.Chmod(mode | 0o400)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return files, fmt.Errorf("restore %s: %w", name, err)
			}
			_ = root.Chtimes(name, hdr.ModTime, hdr.ModTime)
			files++
		case tar.TypeSymlink:
			if err := replaceable(root, name); err != nil {
				return files, err
			}
			if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
				return files, fmt.Errorf("archive entry %q: empty symlink target", hdr.Name)
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return files, fmt.Errorf("restore %s: %w", name, err)
			}
		case tar.TypeLink:
			target, err := cleanEntryName(hdr.Linkname)
			if err != nil || target == "" {
				return files, fmt.Errorf("archive entry %q: hard link to %q outside the workspace", hdr.Name, hdr.Linkname)
			}
			if err := replaceable(root, name); err != nil {
				return files, err
			}
			if err := root.Link(target, name); err != nil {
				return files, fmt.Errorf("restore %s: %w", name, err)
			}
			files++
		default:
			// devices, fifos: not restored
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = root.Chtimes(dirs[i].name, dirs[i].t, dirs[i].t)
	}
	return files, nil
}

// replaceable removes what is at name unless it is a directory, so a file or
// link can be written there without following an old link.
func replaceable(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("restore %s: %w", name, err)
	case fi.IsDir():
		return fmt.Errorf("restore %s: a directory is in the way", name)
	}
	if err := root.Remove(name); err != nil {
		return fmt.Errorf("restore %s: %w", name, err)
	}
	return nil
}
