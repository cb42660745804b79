package tools

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kraken-go/kk/pkg/executor"
)

// Workspace is the host's view of a job's workspace, where tools read and
// write files. Every executor shows the workspace at the same path on the
// host and to the job's commands, so a file a tool writes here is what the
// commands see.
//
// Paths given to tools are resolved inside the workspace: relative paths
// against the step's cwd, absolute paths only when they lie in the
// workspace. A path outside it is an error, except with the local executor,
// where the host is the job's system and absolute paths are allowed. With a
// container executor, files are opened through an os.Root on the workspace,
// so a symlink in the workspace cannot make the agent read or write the
// host's files (a link's target means something else inside the container).
type Workspace struct {
	// Dir is the workspace's absolute path.
	Dir string
	// Local is true when the commands run on the host itself (the
	// environment does not implement executor.SystemFiles).
	Local bool
}

// NewWorkspace returns the workspace of env.
func NewWorkspace(env executor.Env) Workspace {
	_, container := env.(executor.SystemFiles)
	dir := env.Workspace()
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return Workspace{Dir: dir, Local: !container}
}

// inside tells whether the absolute, clean path p is the workspace or in it.
func (w Workspace) inside(p string) bool {
	rel, err := filepath.Rel(w.Dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// rel returns p relative to the workspace (p must be inside).
func (w Workspace) rel(p string) string {
	rel, err := filepath.Rel(w.Dir, p)
	if err != nil {
		return p
	}
	return rel
}

func (w Workspace) outsideErr(what, p string) error {
	return fmt.Errorf("%s %s is outside the job workspace %s; tools can only read and write the workspace", what, p, w.Dir)
}

// Cwd resolves a step's cwd parameter ("" is the workspace).
func (w Workspace) Cwd(cwd string) (string, error) {
	if cwd == "" {
		return w.Dir, nil
	}
	p := cwd
	if !filepath.IsAbs(p) {
		p = filepath.Join(w.Dir, p)
	}
	p = filepath.Clean(p)
	if !w.inside(p) && !w.Local {
		return "", w.outsideErr("cwd", cwd)
	}
	return p, nil
}

// Path resolves p against the directory dir (an absolute path from Cwd);
// what names the parameter in errors.
func (w Workspace) Path(dir, what, p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%s is empty", what)
	}
	abs := p
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(dir, abs)
	}
	abs = filepath.Clean(abs)
	if !w.inside(abs) && !w.Local {
		return "", w.outsideErr(what, p)
	}
	return abs, nil
}

// NoEscape checks, for a container executor, that the absolute path p does
// not lead out of the workspace through a symlink: the deepest existing
// ancestor of p (p itself included) must resolve inside the workspace. Tools
// that write with libraries working on plain paths (go-git) check this first.
func (w Workspace) NoEscape(p string) error {
	if w.Local {
		return nil
	}
	for q := p; ; q = filepath.Dir(q) {
		real, err := filepath.EvalSymlinks(q)
		if err == nil {
			if !w.inside(real) {
				return fmt.Errorf("%s leads out of the job workspace %s through a symlink", p, w.Dir)
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) || q == filepath.Dir(q) {
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
}

// root opens the workspace as an os.Root.
func (w Workspace) root() (*os.Root, error) {
	r, err := os.OpenRoot(w.Dir)
	if err != nil {
		return nil, fmt.Errorf("open workspace: %w", err)
	}
	return r, nil
}

// Open opens the file at the absolute path p for reading.
func (w Workspace) Open(p string) (*os.File, error) {
	if w.Local {
		return os.Open(p)
	}
	if !w.inside(p) {
		return nil, w.outsideErr("path", p)
	}
	r, err := w.root()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Open(w.rel(p))
}

// Stat returns the file info of p, following symlinks (inside the workspace
// only, for a container executor).
func (w Workspace) Stat(p string) (fs.FileInfo, error) {
	if w.Local {
		return os.Stat(p)
	}
	if !w.inside(p) {
		return nil, w.outsideErr("path", p)
	}
	r, err := w.root()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Stat(w.rel(p))
}

// MkdirAll creates the directory p and its parents, readable by everyone
// (steps may run as another user).
func (w Workspace) MkdirAll(p string) error {
	if w.Local {
		return os.MkdirAll(p, 0o755)
	}
	if !w.inside(p) {
		return w.outsideErr("directory", p)
	}
	r, err := w.root()
	if err != nil {
		return err
	}
	defer r.Close()
	return r.MkdirAll(w.rel(p), 0o755)
}

// WriteAtomic writes the file p with what fill writes into it: into a
// temporary file next to p, renamed over p once fill succeeded. fill may be
// called again after a failure (each time on a new temporary file). The
// file is readable by everyone (mode 0644) unless perm says otherwise.
func (w Workspace) WriteAtomic(p string, perm os.FileMode, fill func(f *os.File) error) error {
	if err := w.MkdirAll(filepath.Dir(p)); err != nil {
		return fmt.Errorf("create directory of %s: %w", p, err)
	}
	if perm == 0 {
		perm = 0o644
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	tmp := filepath.Join(filepath.Dir(p), ".kk-tmp-"+hex.EncodeToString(b[:])+"-"+filepath.Base(p))
	var f *os.File
	var err error
	var r *os.Root
	if w.Local {
		f, err = os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	} else {
		if r, err = w.root(); err != nil {
			return err
		}
		defer r.Close()
		f, err = r.OpenFile(w.rel(tmp), os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	remove := func() {
		if r != nil {
			_ = r.Remove(w.rel(tmp))
		} else {
			_ = os.Remove(tmp)
		}
	}
	err = fill(f)
	if err == nil {
		err = f.Chmod(perm) // whatever the umask
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		remove()
		return err
	}
	if r != nil {
		err = r.Rename(w.rel(tmp), w.rel(p))
	} else {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		remove()
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// Match is one file found by Glob.
type Match struct {
	// Abs is the file's absolute path on the host.
	Abs string
	// Rel is its path relative to the directory the pattern was resolved
	// against (slash-separated, no ".."), used to name it in a store.
	Rel  string
	Size int64
}

// hasMeta tells whether a path element is a glob pattern.
func hasMeta(s string) bool { return strings.ContainsAny(s, "*?[") }

// Glob returns the regular files matching pattern, resolved against dir: `*`
// and `?` match within a path element, `[...]` a character class, and `**`
// any number of elements (also none). A pattern naming a directory matches
// every file below it. Symlinks to files count as files; symlinked
// directories are not descended. The result is sorted by Rel.
func (w Workspace) Glob(dir, what, pattern string) ([]Match, error) {
	abs, err := w.Path(dir, what, pattern)
	if err != nil {
		return nil, err
	}
	if _, err := path.Match(filepath.ToSlash(pattern), ""); err != nil {
		return nil, fmt.Errorf("%s %q: bad pattern: %w", what, pattern, err)
	}
	elems := strings.Split(strings.TrimPrefix(filepath.ToSlash(abs), "/"), "/")
	i := 0
	for i < len(elems) && !hasMeta(elems[i]) {
		i++
	}
	base := "/" + filepath.FromSlash(strings.Join(elems[:i], "/"))
	rest := elems[i:]
	if !w.Local && !w.inside(base) {
		return nil, w.outsideErr(what, pattern)
	}
	// relTo names matches: relative to dir when inside it, else to the
	// workspace, else to the pattern's fixed part.
	relTo := func(p string) string {
		for _, d := range []string{dir, w.Dir, base} {
			if rel, err := filepath.Rel(d, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
				return filepath.ToSlash(rel)
			}
		}
		return filepath.Base(p)
	}
	fi, err := w.Stat(base)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", what, pattern, err)
	}
	if len(rest) == 0 {
		if !fi.IsDir() {
			if !fi.Mode().IsRegular() {
				return nil, nil
			}
			return []Match{{Abs: base, Rel: relTo(base), Size: fi.Size()}}, nil
		}
		rest = []string{"**"}
	}
	if !fi.IsDir() {
		return nil, nil
	}
	if !w.Local {
		// The walk starts at base: it must not be a link out of the workspace.
		if real, err := filepath.EvalSymlinks(base); err != nil || !w.inside(real) {
			return nil, w.outsideErr(what, pattern)
		}
	}
	var out []Match
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != base && !matchPrefix(rest, splitRel(base, p)) {
				return filepath.SkipDir
			}
			return nil
		}
		if !matchElems(rest, splitRel(base, p)) {
			return nil
		}
		fi, err := w.Stat(p) // follows a symlink (inside the workspace only)
		if err != nil || !fi.Mode().IsRegular() {
			return nil // dangling or escaping link, socket, device...
		}
		out = append(out, Match{Abs: p, Rel: relTo(p), Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", what, pattern, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rel < out[j].Rel })
	return out, nil
}

func splitRel(base, p string) []string {
	rel, _ := filepath.Rel(base, p)
	return strings.Split(filepath.ToSlash(rel), "/")
}

// MatchPath tells whether the slash-separated name matches the pattern (see
// Glob for the syntax).
func MatchPath(pattern, name string) bool {
	return matchElems(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

// matchElems matches path elements against pattern elements; "**" matches
// any number of elements.
func matchElems(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := range name {
				if matchElems(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// matchPrefix tells whether some path below the directory dir (its elements)
// may match pat: used to prune the walk.
func matchPrefix(pat, dir []string) bool {
	for _, d := range dir {
		if len(pat) == 0 {
			return false
		}
		if pat[0] == "**" {
			return true
		}
		if ok, err := path.Match(pat[0], d); err != nil || !ok {
			return false
		}
		pat = pat[1:]
	}
	return len(pat) > 0
}
