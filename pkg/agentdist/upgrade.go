package agentdist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Defaults of UpgraderConfig.
const (
	DefaultCheckInterval   = time.Minute
	DefaultDownloadTimeout = 10 * time.Minute
	DefaultSmokeTimeout    = 30 * time.Second
	// MaxBinarySize bounds a download.
	MaxBinarySize = 1 << 30
)

// UpgraderConfig configures an Upgrader. ServerURL is required.
type UpgraderConfig struct {
	// ServerURL is kkd's base URL, http(s)://host[:port][/prefix].
	ServerURL string
	// CurrentServer, when set, returns the base URL to use now instead of
	// ServerURL: the agent's current kkd replica (agent.Agent.CurrentServer),
	// so checks and downloads follow the agent's failover.
	CurrentServer func() string
	// Exe is the running kkagent binary (default: os.Executable()).
	Exe string
	// DataDir is the agent's data dir: when the executable's directory is
	// not writable the binary is downloaded to <DataDir>/bin for an admin to
	// install.
	DataDir string
	// OS and Arch name the platform to ask for (default: runtime's).
	OS, Arch string
	// Version is the running version, for logs.
	Version    string
	HTTPClient *http.Client // default: a plain client
	Logger     *slog.Logger // default: discard
	// Interval is the least time between two checks (default 1 min).
	Interval time.Duration
	// DownloadTimeout bounds a download (default 10 min).
	DownloadTimeout time.Duration
	// SmokeTimeout bounds `kkagent.new version` (default 30 s).
	SmokeTimeout time.Duration
}

// Upgrader replaces the running kkagent binary with the one kkd serves. It
// implements agent.Upgrader: the agent calls MaybeUpgrade only while it is
// idle (at start, while waiting for authorization, before each work poll), so
// a job is never interrupted.
type Upgrader struct {
	cfg     UpgraderConfig
	log     *slog.Logger
	exeDir  string
	selfSum string // SHA-256 of Exe, computed once at start

	mu    sync.Mutex // one check at a time
	last  time.Time
	skip  map[string]string // server sums not to try again, with why (logged once)
	noBin bool              // kkd served no binary at the last check (logged once)
}

// NewUpgrader hashes the running binary and returns an upgrader.
func NewUpgrader(cfg UpgraderConfig) (*Upgrader, error) {
	if cfg.ServerURL == "" {
		return nil, errors.New("upgrader: server URL is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("upgrader: data dir is required")
	}
	if _, err := url.Parse(cfg.ServerURL); err != nil {
		return nil, fmt.Errorf("upgrader: server URL: %w", err)
	}
	if cfg.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("upgrader: find own executable: %w", err)
		}
		cfg.Exe = exe
	}
	if exe, err := filepath.EvalSymlinks(cfg.Exe); err == nil {
		cfg.Exe = exe
	}
	if cfg.OS == "" {
		cfg.OS = runtime.GOOS
	}
	if cfg.Arch == "" {
		cfg.Arch = runtime.GOARCH
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultCheckInterval
	}
	if cfg.DownloadTimeout <= 0 {
		cfg.DownloadTimeout = DefaultDownloadTimeout
	}
	if cfg.SmokeTimeout <= 0 {
		cfg.SmokeTimeout = DefaultSmokeTimeout
	}
	sum, err := fileSHA256(cfg.Exe)
	if err != nil {
		return nil, fmt.Errorf("upgrader: hash own executable: %w", err)
	}
	cfg.ServerURL = strings.TrimRight(cfg.ServerURL, "/")
	return &Upgrader{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "upgrade"),
		exeDir:  filepath.Dir(cfg.Exe),
		selfSum: sum,
		skip:    map[string]string{},
	}, nil
}

// SelfSHA256 is the SHA-256 of the running binary.
func (u *Upgrader) SelfSHA256() string { return u.selfSum }

// MaybeUpgrade asks kkd for the SHA-256 of its kkagent for this platform, at
// most once per Interval (the first call always asks). When it differs from
// the running binary's, it downloads the new binary to <exe dir>/kkagent.new,
// verifies its SHA-256, runs `kkagent.new version`, keeps the running binary
// as kkagent.old and moves the new one to the executable's path; it then
// returns true: the caller must exit with ExitUpgraded so its supervisor
// starts the new binary. Errors are transient (kkd unreachable, a corrupt
// download) and worth logging; the next check retries.
func (u *Upgrader) MaybeUpgrade(ctx context.Context) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.last.IsZero() && time.Since(u.last) < u.cfg.Interval {
		return false, nil
	}
	u.last = time.Now()

	want, err := u.serverSum(ctx)
	if errors.Is(err, errNoBinary) {
		if !u.noBin {
			u.log.Info("kkd serves no kkagent for this platform; self-upgrade waits until it does",
				"os", u.cfg.OS, "arch", u.cfg.Arch, "err", err)
			u.noBin = true
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	u.noBin = false
	if want == u.selfSum {
		return false, nil
	}
	if _, ok := u.skip[want]; ok {
		return false, nil // logged when it was decided
	}
	if rejected(u.exeDir, want) {
		u.skipSum(want, "kkd serves a kkagent that was rolled back after it crashed; not installing it again "+
			"(fix the binary on kkd, or delete "+filepath.Join(u.exeDir, RejectedName)+" to retry it)", slog.LevelWarn)
		return false, nil
	}
	u.log.Info("kkd serves another kkagent; upgrading between jobs", "version", u.cfg.Version,
		"sha256", u.selfSum, "new_sha256", want)

	dir, replace := u.exeDir, true
	if !dirWritable(dir) {
		dir, replace = filepath.Join(u.cfg.DataDir, "bin"), false
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, fmt.Errorf("create %s for the new kkagent: %w", dir, err)
		}
	}
	newPath := filepath.Join(dir, NewName)
	if err := u.download(ctx, newPath, want); err != nil {
		_ = os.Remove(newPath)
		return false, err
	}
	newVersion, err := u.smokeTest(ctx, newPath)
	if err != nil {
		_ = os.Remove(newPath)
		u.skipSum(want, fmt.Sprintf("the kkagent kkd serves fails its smoke test (%v); not installing it: fix the binary on kkd", err), slog.LevelError)
		return false, nil
	}
	if !replace {
		u.skipSum(want, fmt.Sprintf("kkagent %s was downloaded to %s but cannot replace %s: its directory is not writable by uid %d; "+
			"install it by hand (install -m 0755 %s %s and restart kkagent) or make %s writable for the agent's user",
			newVersion, newPath, u.cfg.Exe, os.Getuid(), newPath, u.cfg.Exe, u.exeDir), slog.LevelWarn)
		return false, nil
	}
	if err := u.swap(newPath); err != nil {
		_ = os.Remove(newPath)
		return false, err
	}
	u.log.Info("kkagent upgraded; restarting on the new binary", "from_version", u.cfg.Version, "to_version", newVersion,
		"sha256", want, "exe", u.cfg.Exe, "rollback", filepath.Join(u.exeDir, OldName))
	return true, nil
}

// skipSum remembers not to try sum again in this process and logs why, once.
func (u *Upgrader) skipSum(sum, why string, level slog.Level) {
	u.skip[sum] = why
	u.log.Log(context.Background(), level, why, "sha256", sum)
}

var errNoBinary = errors.New("no kkagent binary for this platform")

// server returns the base URL of the kkd to ask now.
func (u *Upgrader) server() string {
	if u.cfg.CurrentServer != nil {
		if s := u.cfg.CurrentServer(); s != "" {
			return strings.TrimRight(s, "/")
		}
	}
	return u.cfg.ServerURL
}

func (u *Upgrader) platformQuery() string {
	return "?" + url.Values{"os": {u.cfg.OS}, "arch": {u.cfg.Arch}}.Encode()
}

// serverSum asks kkd for the SHA-256 of its binary.
func (u *Upgrader) serverSum(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.server()+SHA256Route+u.platformQuery(), nil)
	if err != nil {
		return "", fmt.Errorf("ask kkd for the kkagent checksum: %w", err)
	}
	resp, err := u.cfg.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("ask kkd for the kkagent checksum: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return "", fmt.Errorf("%w: %s", errNoBinary, bytes.TrimSpace(body))
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("ask kkd for the kkagent checksum: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	sum := strings.TrimSpace(string(body))
	if !validSHA256(sum) {
		return "", fmt.Errorf("ask kkd for the kkagent checksum: answer %q is not a hex SHA-256", sum)
	}
	return sum, nil
}

// download fetches the binary to path and verifies that its SHA-256 is want.
func (u *Upgrader) download(ctx context.Context, path, want string) error {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.DownloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.server()+BinaryRoute+u.platformQuery(), nil)
	if err != nil {
		return fmt.Errorf("download kkagent: %w", err)
	}
	resp, err := u.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("download kkagent: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("download kkagent: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	if got := resp.Header.Get(ChecksumHeader); got != "" && got != want {
		return fmt.Errorf("download kkagent: kkd replaced the binary meanwhile (checksum %s, expected %s); retrying at the next check", got, want)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("download kkagent: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, MaxBinarySize+1))
	if err == nil && n > MaxBinarySize {
		err = fmt.Errorf("the binary is larger than %d bytes", MaxBinarySize)
	}
	if err == nil {
		err = f.Chmod(0o755) // O_CREATE's mode is subject to the umask
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download kkagent to %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("download kkagent: the received binary's SHA-256 is %s, kkd announced %s (corrupted in transit?); retrying at the next check", got, want)
	}
	return nil
}

// smokeTest runs `<path> version` and returns the version it prints.
func (u *Upgrader) smokeTest(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.SmokeTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.Command(path, "version")
	cmd.Stdout, cmd.Stderr = &out, &out
	err := startCmd(cmd)
	if err == nil {
		stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
		err = cmd.Wait()
		stop()
	}
	if err != nil {
		return "", fmt.Errorf("%s version: %w: %s", path, err, bytes.TrimSpace(out.Bytes()))
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(out.String()), "kkagent ")
	if !ok || v == "" {
		return "", fmt.Errorf("%s version printed %q, not \"kkagent VERSION\"", path, bytes.TrimSpace(out.Bytes()))
	}
	return v, nil
}

// swap keeps the running binary as kkagent.old and moves newPath to the
// executable's path. The executable's path always names a complete binary:
// the old one is hard-linked (or copied) to kkagent.old first, then the new
// one is renamed over it.
func (u *Upgrader) swap(newPath string) error {
	old := filepath.Join(u.exeDir, OldName)
	if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", old, err)
	}
	if err := os.Link(u.cfg.Exe, old); err != nil {
		if err := copyFile(u.cfg.Exe, old); err != nil {
			return fmt.Errorf("keep the running kkagent as %s: %w", old, err)
		}
	}
	if err := os.Rename(newPath, u.cfg.Exe); err != nil {
		return fmt.Errorf("install the new kkagent as %s: %w", u.cfg.Exe, err)
	}
	syncDir(u.exeDir)
	return nil
}

// dirWritable tells whether files can be created in dir.
func dirWritable(dir string) bool {
	f, err := os.CreateTemp(dir, ".kkagent-write-test-*")
	if err != nil {
		return false
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return true
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes renames in dir durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
