package agentinstall

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// CommandRunner runs a plan's commands. Run evaluates c.Unless and c.If
// itself (OnChange is Apply's business) and returns an error when a
// program fails.
type CommandRunner interface {
	Run(ctx context.Context, c Command) error
}

// ExecRunner runs commands with os/exec, on this host.
type ExecRunner struct {
	// Stdout and Stderr receive the programs' output (nil: discarded).
	Stdout, Stderr io.Writer
}

// Run implements CommandRunner.
func (r ExecRunner) Run(ctx context.Context, c Command) error {
	check, want := c.Unless, false
	if c.If != nil {
		check, want = c.If, true
	}
	if check != nil {
		ok, err := r.check(ctx, check)
		if err != nil {
			return err
		}
		if ok != want {
			return nil
		}
	}
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	cmd.Stdout, cmd.Stderr = r.Stdout, r.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", ShellJoin(c.Args), err)
	}
	return nil
}

// check reports whether args exits 0.
func (r ExecRunner) check(ctx context.Context, args []string) (bool, error) {
	err := exec.CommandContext(ctx, args[0], args[1:]...).Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee):
		return false, nil
	}
	return false, fmt.Errorf("%s: %w", ShellJoin(args), err)
}

// Recorder records commands instead of running them: for installs into a
// directory other than "/" and for tests. Every process that would start
// is recorded, checks included.
type Recorder struct {
	// Check answers a check (Command.Unless or If); nil answers "fails",
	// as on a host where the agent was never installed.
	Check func(args []string) bool

	mu  sync.Mutex
	ran [][]string
}

// Run implements CommandRunner.
func (r *Recorder) Run(_ context.Context, c Command) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	check, want := c.Unless, false
	if c.If != nil {
		check, want = c.If, true
	}
	if check != nil {
		r.ran = append(r.ran, check)
		if (r.Check != nil && r.Check(check)) != want {
			return nil
		}
	}
	r.ran = append(r.ran, c.Args)
	return nil
}

// Ran returns the argument vectors recorded so far.
func (r *Recorder) Ran() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]string, len(r.ran))
	for i, a := range r.ran {
		out[i] = slices.Clone(a)
	}
	return out
}

// BinaryFetcher gets what kkd serves for installs.
type BinaryFetcher interface {
	// Get returns the body at url; the caller closes it.
	Get(ctx context.Context, url string) (io.ReadCloser, error)
}

// HTTPFetcher gets URLs with an HTTP client. kkd's install routes need no
// credentials, so none are sent.
type HTTPFetcher struct {
	Client *http.Client // nil: http.DefaultClient
}

// Get implements BinaryFetcher.
func (f HTTPFetcher) Get(ctx context.Context, url string) (io.ReadCloser, error) {
	c := f.Client
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("download %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp.Body, nil
}

// CheckHost checks that this process can install into "/": it runs as root
// (euid 0) and systemd is running.
func CheckHost(euid int) error {
	if euid != 0 {
		return errors.New("installing an agent changes the system: run as root, e.g. with sudo, or use --dry-run to see what would be done")
	}
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return errors.New("systemd is not running on this host (no /run/systemd/system): " +
			"use --docker for a containerised agent, or run `kkagent run` under your own supervisor")
	}
	return nil
}

// Apply carries the plan out under root: "/" for a real install, another
// directory for a staged one (tests, images). The binary is downloaded
// through fetch and verified before anything is changed, so a failed
// download or a checksum mismatch leaves root as it was. Commands go to run
// (nil: not run); when root is not "/" an ExecRunner is refused, since the
// commands act on the host, not on root. Apply is idempotent: running it
// again rewrites the files and runs the OnChange commands only when
// something changed.
func (p *Plan) Apply(ctx context.Context, root string, run CommandRunner, fetch BinaryFetcher) error {
	if !filepath.IsAbs(root) {
		return fmt.Errorf("install root %q is not an absolute path", root)
	}
	root = filepath.Clean(root)
	switch run.(type) {
	case ExecRunner, *ExecRunner:
		if root != "/" {
			return fmt.Errorf("install root is %s, not /: refusing to run commands on this host for it", root)
		}
	}
	at := func(p string) string { return filepath.Join(root, p) }
	if err := p.checkGuards(at); err != nil {
		return err
	}
	var bin *fetched
	if p.Binary != nil {
		if fetch == nil {
			return errors.New("no fetcher for the kkagent binary")
		}
		var err error
		if bin, err = fetchVerified(ctx, fetch, p.Binary); err != nil {
			return err
		}
		defer os.Remove(bin.path)
	}

	if err := p.run(ctx, root, run, p.Before, true); err != nil {
		return err
	}
	for _, d := range p.Dirs {
		// Missing parents get 0755 (like mkdir -p), the directory its mode.
		if err := os.MkdirAll(filepath.Dir(at(d.Path)), 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(at(d.Path), d.Mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := os.Chmod(at(d.Path), d.Mode); err != nil {
			return err
		}
		p.progress("directory %s (%04o)", d.Path, d.Mode)
	}
	changed := false
	if bin != nil {
		c, err := installBinary(at(p.Binary.Path), p.Binary.Mode, bin)
		if err != nil {
			return err
		}
		changed = changed || c
		p.progress("kkagent %s → %s (sha256 %s)", word(c, "installed", "unchanged"), p.Binary.Path, bin.sum)
	}
	for _, f := range p.Files {
		c, err := writeFile(at(f.Path), f.Mode, f.Content)
		if err != nil {
			return err
		}
		changed = changed || c
		p.progress("%s %s (%04o)", word(c, "wrote", "unchanged"), f.Path, f.Mode)
	}
	for _, r := range p.Remove {
		c, err := remove(at(r.Path), r.Recursive)
		if err != nil {
			return err
		}
		changed = changed || c
		if c {
			p.progress("removed %s", r.Path)
		}
	}
	return p.run(ctx, root, run, p.After, changed)
}

func word(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

func (p *Plan) progress(format string, args ...any) {
	if p.Progress != nil {
		fmt.Fprintf(p.Progress, format+"\n", args...)
	}
}

func (p *Plan) run(ctx context.Context, root string, run CommandRunner, cmds []Command, changed bool) error {
	if run == nil {
		return nil
	}
	for _, c := range cmds {
		if c.OnChange && !changed {
			continue
		}
		if root == "/" {
			p.progress("run: %s", c)
		} else {
			p.progress("host command (install root %s): %s", root, c)
		}
		if err := run.Run(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// checkGuards refuses to overwrite guarded files the installer did not write.
func (p *Plan) checkGuards(at func(string) string) error {
	if p.Force {
		return nil
	}
	for _, f := range p.Files {
		if !f.Guard {
			continue
		}
		ours, err := writtenByUs(at(f.Path))
		if err != nil {
			return err
		}
		if !ours {
			return fmt.Errorf("%s exists and was not written by kk agent install: "+
				"remove it, or pass --force to overwrite it", f.Path)
		}
	}
	return nil
}

// writtenByUs reports whether the file at path is missing or carries Marker.
func writtenByUs(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return bytes.Contains(b, []byte(Marker)), nil
}

// fetched is a downloaded, verified binary in a temporary file.
type fetched struct {
	path string
	sum  string
}

// fetchVerified downloads d into a temporary file and checks its digest.
func fetchVerified(ctx context.Context, fetch BinaryFetcher, d *Download) (*fetched, error) {
	want, err := fetchSum(ctx, fetch, d.SHA256URL)
	if err != nil {
		return nil, err
	}
	body, err := fetch.Get(ctx, d.URL)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	tmp, err := os.CreateTemp("", "kkagent-download-*")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("download %s: %w", d.URL, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("kkagent from %s has SHA-256 %s, but the server says %s: "+
			"nothing was installed; retry, and if it persists check the binaries kkd serves", d.URL, got, want)
	}
	return &fetched{path: tmp.Name(), sum: want}, nil
}

// fetchSum gets a hex SHA-256 digest (the first word of the body).
func fetchSum(ctx context.Context, fetch BinaryFetcher, url string) (string, error) {
	body, err := fetch.Get(ctx, url)
	if err != nil {
		return "", err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, 1024))
	if err != nil {
		return "", fmt.Errorf("download %s: %w", url, err)
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return "", fmt.Errorf("%s: empty answer, want a hex SHA-256 digest", url)
	}
	sum := strings.ToLower(fields[0])
	if _, err := hex.DecodeString(sum); err != nil || len(sum) != 2*sha256.Size {
		return "", fmt.Errorf("%s: %q is not a hex SHA-256 digest", url, fields[0])
	}
	return sum, nil
}

// installBinary puts the verified binary at path, atomically (a running
// kkagent keeps its old inode). It reports whether the content changed.
func installBinary(path string, mode os.FileMode, bin *fetched) (bool, error) {
	if sum, err := fileSHA256(path); err == nil && sum == bin.sum {
		return false, os.Chmod(path, mode)
	}
	src, err := os.Open(bin.path)
	if err != nil {
		return false, err
	}
	defer src.Close()
	return true, writeAtomic(path, mode, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	})
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeFile writes content to path atomically unless it is there already
// with that mode; it reports whether anything changed.
func writeFile(path string, mode os.FileMode, content []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == mode {
			return false, nil
		}
	}
	return true, writeAtomic(path, mode, func(w io.Writer) error {
		_, err := w.Write(content)
		return err
	})
}

// writeAtomic writes a temporary file next to path, syncs it and renames it
// over path; readers see the old or the new file, never a part.
func writeAtomic(path string, mode os.FileMode, write func(io.Writer) error) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// remove deletes path; a directory that is not recursive only when empty.
// It reports whether something was removed.
func remove(path string, recursive bool) (bool, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if recursive {
		return true, os.RemoveAll(path)
	}
	err := os.Remove(path)
	if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		return false, nil
	}
	return err == nil, err
}
