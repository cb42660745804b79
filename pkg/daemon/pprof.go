package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofListener opens the listener of --pprof. The profiles are served
// without authentication and /debug/pprof/cmdline shows kkd's command line
// (a --db URL with its password included), so only a loopback address is
// accepted unless allowRemote (--pprof-allow-remote) says otherwise.
func pprofListener(addr string, allowRemote bool) (net.Listener, error) {
	if err := checkPprofAddr(addr, allowRemote); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: listen on %s: %w", addr, err)
	}
	return ln, nil
}

// checkPprofAddr says what is wrong with a --pprof address.
func checkPprofAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--pprof %q: give HOST:PORT, e.g. 127.0.0.1:6060: %w", addr, err)
	}
	if !allowRemote && !loopbackHost(host) {
		return fmt.Errorf("--pprof %q: the profiles are served without authentication and show kkd's command line: listen on a loopback address (127.0.0.1:6060, [::1]:6060, localhost:6060) or pass --pprof-allow-remote", addr)
	}
	return nil
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// pprofHandler serves net/http/pprof's pages under /debug/pprof/.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves the named profiles (heap, goroutine, …)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// servePprof serves the profiles on ln until ctx ends; the returned channel
// is closed once the server stopped.
func servePprof(ctx context.Context, ln net.Listener, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	// No write timeout: /debug/pprof/profile and /trace stream for ?seconds=N.
	hs := &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("pprof serving", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	return done
}
