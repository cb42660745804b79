package agentdist

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kraken-go/kk/pkg/api"
)

// Routes served by NewHandler's handler.
const (
	BinaryRoute = "/install/kkagent"
	SHA256Route = "/install/kkagent/sha256"
)

// ChecksumHeader carries the SHA-256 (hex) of a served binary.
const ChecksumHeader = "X-Checksum-Sha256"

// Config configures the binary handler.
type Config struct {
	// Dir holds the binaries, named kkagent-<os>-<arch> (BinaryName). It may
	// be empty or missing: then only Self is served.
	Dir string
	// Self is a kkagent binary for kkd's own platform (runtime.GOOS/GOARCH),
	// served when Dir has none for it; typically the kkagent next to the kkd
	// executable. It may be empty or missing.
	Self string
	// Logger (default: discard).
	Logger *slog.Logger
}

// DefaultConfig is where kkd looks for agent binaries when not told
// otherwise: <dir of kkdExe>/agents (make build puts the cross-compiled
// binaries in bin/agents) and the kkagent next to kkdExe.
func DefaultConfig(kkdExe string) Config {
	dir := filepath.Dir(kkdExe)
	return Config{Dir: filepath.Join(dir, "agents"), Self: filepath.Join(dir, "kkagent")}
}

// NewHandler returns the handler of
//
//	GET /install/kkagent?os=linux&arch=amd64          the binary (application/octet-stream,
//	                                                  X-Checksum-Sha256, ETag, Range)
//	GET /install/kkagent/sha256?os=linux&arch=amd64   its SHA-256, hex, text/plain
//
// Both are public (no credential): binaries are not secrets. A platform
// without a binary gets 404 with the JSON error envelope naming the
// platforms that are served. Checksums are computed once per file version
// (path, modification time, size) and cached, so replacing a file in Dir is
// picked up without restarting kkd. Mount it on both routes, e.g.
//
//	h := agentdist.NewHandler(cfg)
//	mux.Handle("GET "+agentdist.BinaryRoute, h)
//	mux.Handle("GET "+agentdist.SHA256Route, h)
func NewHandler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &handler{cfg: cfg, sums: map[string]sumEntry{}}
}

type handler struct {
	cfg Config

	mu   sync.Mutex
	sums map[string]sumEntry // by path
}

type sumEntry struct {
	mtime time.Time
	size  int64
	sum   string
}

var platformPart = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, api.CodeBadRequest, r.Method+" is not supported here: use GET")
		return
	}
	var sumOnly bool
	switch {
	case strings.HasSuffix(r.URL.Path, SHA256Route):
		sumOnly = true
	case strings.HasSuffix(r.URL.Path, BinaryRoute):
	default:
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("no such route %s: use %s or %s", r.URL.Path, BinaryRoute, SHA256Route))
		return
	}
	goos, goarch := r.URL.Query().Get("os"), r.URL.Query().Get("arch")
	if !platformPart.MatchString(goos) || !platformPart.MatchString(goarch) {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf(
			"give the platform as ?os=OS&arch=ARCH in Go's names, e.g. ?os=linux&arch=amd64 (served: %s)", h.platformList()))
		return
	}
	f, fi, err := h.open(goos, goarch)
	if err != nil {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf(
			"this kkd serves no kkagent for %s/%s (served: %s); put a binary named %s into kkd's --agent-binaries directory",
			goos, goarch, h.platformList(), BinaryName(goos, goarch)))
		return
	}
	defer f.Close()
	sum, err := h.checksum(f, fi)
	if err != nil {
		h.cfg.Logger.Error("cannot hash agent binary", "path", f.Name(), "err", err)
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "internal server error: cannot read the kkagent binary; see kkd's log")
		return
	}
	w.Header().Set(ChecksumHeader, sum)
	w.Header().Set("Cache-Control", "no-cache")
	if sumOnly {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, sum+"\n")
		return
	}
	h.cfg.Logger.Debug("serving kkagent binary", "os", goos, "arch", goarch, "sha256", sum, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="kkagent"`)
	w.Header().Set("ETag", `"sha256-`+sum+`"`)
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// open finds and opens the binary for a platform: Dir's, else Self for
// kkd's own platform.
func (h *handler) open(goos, goarch string) (*os.File, fs.FileInfo, error) {
	var paths []string
	if h.cfg.Dir != "" {
		paths = append(paths, filepath.Join(h.cfg.Dir, BinaryName(goos, goarch)))
	}
	if h.cfg.Self != "" && goos == runtime.GOOS && goarch == runtime.GOARCH {
		paths = append(paths, h.cfg.Self)
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			continue
		}
		return f, fi, nil
	}
	return nil, nil, fs.ErrNotExist
}

// checksum returns the SHA-256 of the open file, from the cache when the file
// version (path, mtime, size) is known.
func (h *handler) checksum(f *os.File, fi fs.FileInfo) (string, error) {
	key := f.Name()
	h.mu.Lock()
	e, ok := h.sums[key]
	h.mu.Unlock()
	if ok && e.mtime.Equal(fi.ModTime()) && e.size == fi.Size() {
		return e.sum, nil
	}
	sum, err := readerSHA256(io.NewSectionReader(f, 0, fi.Size()))
	if err != nil {
		return "", err
	}
	h.mu.Lock()
	h.sums[key] = sumEntry{mtime: fi.ModTime(), size: fi.Size(), sum: sum}
	h.mu.Unlock()
	return sum, nil
}

// platforms lists the served platforms as "os/arch", sorted.
func (h *handler) platforms() []string {
	var out []string
	if h.cfg.Dir != "" {
		entries, _ := os.ReadDir(h.cfg.Dir)
		for _, e := range entries {
			rest, ok := strings.CutPrefix(e.Name(), "kkagent-")
			goos, goarch, ok2 := strings.Cut(rest, "-")
			if !ok || !ok2 || !platformPart.MatchString(goos) || !platformPart.MatchString(goarch) {
				continue
			}
			if fi, err := os.Stat(filepath.Join(h.cfg.Dir, e.Name())); err == nil && fi.Mode().IsRegular() {
				out = append(out, goos+"/"+goarch)
			}
		}
	}
	if h.cfg.Self != "" {
		if fi, err := os.Stat(h.cfg.Self); err == nil && fi.Mode().IsRegular() {
			out = append(out, runtime.GOOS+"/"+runtime.GOARCH)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (h *handler) platformList() string {
	p := h.platforms()
	if len(p) == 0 {
		return "none"
	}
	return strings.Join(p, ", ")
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: code, Message: msg}})
}
