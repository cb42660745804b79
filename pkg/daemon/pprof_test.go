package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestServePprof: kkd --pprof serves net/http/pprof on its own listener while
// kkd runs, and stops it when kkd stops.
func TestServePprof(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, Options{
			Listen: "127.0.0.1:0", DataDir: t.TempDir(), Pprof: "127.0.0.1:0",
			Stdout: io.Discard, Stderr: io.Discard, Logger: slog.New(slog.DiscardHandler),
			PprofReady: func(addr string) { addrc <- addr },
		})
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("kkd stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("pprof did not listen within 30 s")
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	status, body := get("/debug/pprof/")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "goroutine")
	status, body = get("/debug/pprof/goroutine?debug=1")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "goroutine profile:")
	status, _ = get("/api/v1/projects")
	require.Equal(t, http.StatusNotFound, status, "the pprof listener serves the profiles only")

	cancel()
	require.NoError(t, <-done)
	_, err := http.Get("http://" + addr + "/debug/pprof/")
	require.Error(t, err, "the pprof listener must be closed with kkd")
}

func TestPprofListenerAddresses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr    string
		remote  bool
		wantErr string
	}{
		{addr: "127.0.0.1:0"},
		{addr: "localhost:0"},
		{addr: "0.0.0.0:0", wantErr: "loopback"},
		{addr: ":0", wantErr: "--pprof-allow-remote"},
		{addr: "0.0.0.0:0", remote: true},
		{addr: "6060", wantErr: "give HOST:PORT"},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			t.Parallel()
			ln, err := pprofListener(tc.addr, tc.remote)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.NoError(t, ln.Close())
		})
	}
}

// TestServePprofRefusesRemote: a non-loopback --pprof stops kkd before it
// creates anything.
func TestServePprofRefusesRemote(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	err := Serve(t.Context(), Options{
		Listen: "127.0.0.1:0", DataDir: dir, Pprof: "0.0.0.0:6060",
		Stdout: io.Discard, Stderr: io.Discard, Logger: slog.New(slog.DiscardHandler),
	})
	require.ErrorContains(t, err, "--pprof-allow-remote")
	require.NoDirExists(t, dir, "bad flags change nothing")
}
