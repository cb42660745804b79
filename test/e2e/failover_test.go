package e2e

import (
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tcpProxy forwards connections to target: a second address of the same kkd,
// standing in for a replica. close kills it: the listener and every
// connection it carries, held long polls included.
type tcpProxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) url() string { return "http://" + p.l.Addr().String() }

func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) serve() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		if !p.track(in) || !p.track(out) {
			_ = in.Close()
			_ = out.Close()
			continue
		}
		go pipe(out, in)
		go pipe(in, out)
	}
}

// pipe copies src to dst and closes both when either side ends.
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src) // ends with an error when the proxy is killed
	_ = dst.Close()
	_ = src.Close()
}

func (p *tcpProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	_ = p.l.Close()
	for c := range p.conns {
		_ = c.Close()
	}
}

// TestAgentFailsOverBetweenServers: an agent given two addresses of kkd
// (two proxies in front of one kkd, as two replicas on one database) loses
// the one it uses in the middle of a job: it goes on through the other, the
// lease holds, and the job completes once with its whole log.
func TestAgentFailsOverBetweenServers(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.setupCounting(20, "0.5")
	target := strings.TrimPrefix(c.url, "http://")
	pa, pb := startProxy(t, target), startProxy(t, target)
	name := "twohomed"
	agent := start(t, nil, "kkagent", "run", "-s", pa.url()+","+pb.url(),
		"-d", filepath.Join(t.TempDir(), "agent-"+name), "--name", name)
	waitFor(t, 20*time.Second, "agent to be discovered", func() bool { return findAgent(c.agents(true), name) != nil })
	c.ok("agent", "authorize", name)
	waitFor(t, 20*time.Second, "agent to be idle", func() bool {
		a := findAgent(c.agents(false), name)
		return a != nil && a.State == "idle"
	})

	var f flowJSON
	c.okJSON(&f, "flow", "run", "chaos/main")
	jobID := f.Runs[0].Jobs[0].ID
	waitFor(t, 30*time.Second, "job to print", func() bool {
		return strings.Contains(c.ok("job", "logs", strconv.FormatInt(jobID, 10)), "line 3")
	})
	pa.close()
	waitFor(t, 60*time.Second, "job to complete", func() bool { return c.job(jobID).State == "completed" })
	j := c.job(jobID)
	require.Equal(t, "ok", j.Result)
	require.Equal(t, name, j.Agent)
	log := c.ok("job", "logs", strconv.FormatInt(jobID, 10))
	require.NotContains(t, log, "==> attempt 2", "the job must not have been run a second time")
	checkCount(t, log, 20, true)
	require.Contains(t, agent.Output(), "kkd server failed; switching to the next one")
	a := findAgent(c.agents(false), name)
	require.NotNil(t, a)
	require.NotEqual(t, "lost_contact", a.State)
}
