// Package blobtest gives tests a real S3 server, a throwaway MinIO process
// (StartMinIO), and the one behaviour suite every blob.Store passes (Run).
//
// The MinIO binary is found as $KK_TEST_MINIO, then minio in PATH, then
// $(go env GOPATH)/bin/minio, where scripts/test-deps.sh (run by `make test`)
// installs the pinned version. When it is missing the test fails in CI (CI
// set) and is skipped elsewhere, with the command that installs it.
package blobtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIOVersion is the pinned MinIO server module (see scripts/test-deps.sh).
const MinIOVersion = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// InstallCommand installs the pinned MinIO server into $(go env GOPATH)/bin.
const InstallCommand = "GOFLAGS=-mod=mod go install " + MinIOVersion

// MinIO is a running throwaway MinIO server.
type MinIO struct {
	// Endpoint is host:port (plain HTTP on 127.0.0.1).
	Endpoint  string
	AccessKey string
	SecretKey string
}

// URL returns the storage URL of bucket on this server, credentials included.
func (m *MinIO) URL(bucket string) string {
	return fmt.Sprintf("s3://%s:%s@%s/%s?secure=false", url.PathEscape(m.AccessKey), url.PathEscape(m.SecretKey), m.Endpoint, bucket)
}

// Binary returns the path of the MinIO server binary, or "" when there is none.
func Binary() string {
	if p := os.Getenv("KK_TEST_MINIO"); p != "" {
		return p
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	for _, dir := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(dir, "bin", "minio")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// unavailable fails the test in CI (CI set) and skips it elsewhere.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI: the MinIO tests must run; `make test` runs scripts/test-deps.sh, which installs it)", msg)
	}
	t.Skipf("%s; skipped outside CI", msg)
}

// StartMinIO starts a MinIO server on a free port of 127.0.0.1 with its own
// temporary data dir and random root credentials, waits until it answers its
// liveness probe, and stops it when the test ends.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := Binary()
	if bin == "" {
		unavailable(t, "the MinIO server binary is not installed: run `%s` (or set KK_TEST_MINIO to its path)", InstallCommand)
	}
	var lastErr error
	// A port found free may be taken before MinIO binds it: try a few.
	for range 3 {
		m, err := startMinIO(t, bin)
		if err == nil {
			return m
		}
		lastErr = err
	}
	t.Fatalf("start MinIO (%s): %v", bin, lastErr)
	return nil
}

func startMinIO(t testing.TB, bin string) (*MinIO, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	m := &MinIO{
		Endpoint:  net.JoinHostPort("127.0.0.1", port),
		AccessKey: "kkaccess" + randHex(6),
		SecretKey: "kksecret" + randHex(16),
	}
	cmd := exec.Command(bin, "server", filepath.Join(dir, "data"),
		"--address", m.Endpoint, "--certs-dir", filepath.Join(dir, "certs"), "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "HOME="+dir)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	if err := waitLive(t.Context(), m, exited); err != nil {
		stop()
		return nil, fmt.Errorf("%w; MinIO output:\n%s", err, out.String())
	}
	t.Cleanup(stop)
	return m, nil
}

// waitLive polls the liveness probe until it answers 200, then an S3 call
// until it succeeds: MinIO answers "Server not initialized yet" for a moment
// after its probes are green.
func waitLive(ctx context.Context, m *MinIO, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	c, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
	if err != nil {
		return fmt.Errorf("s3 client: %w", err)
	}
	probes := []struct {
		name string
		ok   func() bool
	}{
		{"/minio/health/live", func() bool {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.Endpoint+"/minio/health/live", nil)
			if err != nil {
				return false
			}
			resp, err := hc.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}},
		{"ListBuckets", func() bool {
			_, err := c.ListBuckets(ctx)
			return err == nil
		}},
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, p := range probes {
		for !p.ok() {
			select {
			case <-exited:
				return errors.New("MinIO exited before it was ready")
			case <-ctx.Done():
				return fmt.Errorf("MinIO did not answer %s in time: %w", p.name, ctx.Err())
			case <-tick.C:
			}
		}
	}
	return nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// syncBuffer collects a process's output for error messages.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 64<<10 {
		s.b.Write(p)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
