package agentinstall_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeKKD serves kkagent binaries and their digests as kkd does.
type fakeKKD struct {
	*httptest.Server

	mu sync.Mutex
	// binary is served per architecture.
	binary map[string][]byte
	// sum, when set, is served instead of the right digest.
	sum      string
	requests []string
}

func newFakeKKD(t *testing.T) *fakeKKD {
	t.Helper()
	k := &fakeKKD{binary: map[string][]byte{
		"amd64": []byte("#!/bin/sh\necho fake kkagent amd64\n"),
		"arm64": []byte("#!/bin/sh\necho fake kkagent arm64\n"),
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /install/kkagent", func(w http.ResponseWriter, r *http.Request) {
		b, ok := k.lookup(r)
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Checksum-Sha256", digest(b))
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /install/kkagent/sha256", func(w http.ResponseWriter, r *http.Request) {
		b, ok := k.lookup(r)
		if !ok {
			http.NotFound(w, r)
			return
		}
		sum := digest(b)
		k.mu.Lock()
		if k.sum != "" {
			sum = k.sum
		}
		k.mu.Unlock()
		_, _ = w.Write([]byte(sum + "\n"))
	})
	k.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.requests = append(k.requests, r.URL.RequestURI())
		k.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(k.Close)
	return k
}

func (k *fakeKKD) lookup(r *http.Request) ([]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r.URL.Query().Get("os") != "linux" {
		return nil, false
	}
	b, ok := k.binary[r.URL.Query().Get("arch")]
	return b, ok
}

// Binary returns what is served for arch.
func (k *fakeKKD) Binary(arch string) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.binary[arch]
}

// Set changes what is served for arch (nil: nothing) and the digest
// served ("" = the right one).
func (k *fakeKKD) Set(arch string, binary []byte, sum string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if binary == nil {
		delete(k.binary, arch)
	} else {
		k.binary[arch] = binary
	}
	k.sum = sum
}

func (k *fakeKKD) Requests() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.requests...)
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// entry is a file or directory of a tree.
type entry struct {
	Mode    fs.FileMode
	Content string // files only
}

// tree lists everything under root by slash path relative to root.
func tree(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{Mode: fi.Mode() & (fs.ModeDir | fs.ModePerm)}
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Content = string(b)
		}
		rel, _ := filepath.Rel(root, p)
		out["/"+filepath.ToSlash(rel)] = e
		return nil
	})
	require.NoError(t, err)
	return out
}

// unitSections parses a systemd unit into section → key → values.
func unitSections(t *testing.T, b []byte) map[string]map[string][]string {
	t.Helper()
	u := map[string]map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%q is not KEY=VALUE", line)
			require.NotEmpty(t, section, "%q is outside a section", line)
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// envLines parses KEY=VALUE lines.
func envLines(t *testing.T, b []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%q is not KEY=VALUE", line)
		m[k] = v
	}
	return m
}
