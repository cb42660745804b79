// Package smtptest is an SMTP sink for tests: a server on 127.0.0.1 that
// speaks enough SMTP for Go's net/smtp client (EHLO, STARTTLS, AUTH PLAIN,
// MAIL, RCPT, DATA, RSET, NOOP, QUIT) and hands every accepted message to
// the test. Its TLS certificate is httptest's self-signed one (for
// 127.0.0.1 and example.com); CAFile and Pool let the client trust it.
package smtptest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Options of a Sink.
type Options struct {
	// User and Password, when set, are required (AUTH PLAIN) before MAIL.
	User, Password string
	// ImplicitTLS makes the sink speak TLS from the start (smtps); else it
	// offers STARTTLS.
	ImplicitTLS bool
	// Refuse answers MAIL FROM with 550 (a permanent refusal).
	Refuse bool
}

// Message is one accepted message.
type Message struct {
	From string
	To   []string
	Data string // as received, dot-unstuffed, CRLF line ends
	TLS  bool   // the session was encrypted
	User string // who authenticated ("" when nobody)
}

// Sink is a running SMTP sink.
type Sink struct {
	// Addr is HOST:PORT.
	Addr string
	// Pool trusts the sink's certificate; CAFile is it in PEM.
	Pool   *x509.CertPool
	CAFile string
	// Messages receives every accepted message (buffered).
	Messages chan Message

	opts Options
	ln   net.Listener
	cert tls.Certificate
	wg   sync.WaitGroup
}

// Start starts a sink, stopped when the test ends.
func Start(t testing.TB, opts Options) *Sink {
	t.Helper()
	ts := httptest.NewTLSServer(nil)
	cert := ts.TLS.Certificates[0]
	x := ts.Certificate()
	ts.Close()
	pool := x509.NewCertPool()
	pool.AddCert(x)
	caFile := filepath.Join(t.TempDir(), "smtp-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw}), 0o600); err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	s := &Sink{Addr: ln.Addr().String(), Pool: pool, CAFile: caFile, Messages: make(chan Message, 100), opts: opts, ln: ln, cert: cert}
	s.wg.Go(s.serve)
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

// Port is the sink's port.
func (s *Sink) Port() string {
	_, p, _ := net.SplitHostPort(s.Addr)
	return p
}

func (s *Sink) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() {
			defer c.Close()
			s.session(c)
		})
	}
}

func (s *Sink) session(c net.Conn) {
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{s.cert}}
	encrypted := false
	if s.opts.ImplicitTLS {
		c = tls.Server(c, tlsCfg)
		encrypted = true
	}
	r := bufio.NewReader(c)
	reply := func(lines ...string) bool {
		_, err := fmt.Fprint(c, strings.Join(lines, "\r\n")+"\r\n")
		return err == nil
	}
	if !reply("220 smtptest ESMTP") {
		return
	}
	var msg Message
	user := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			lines := []string{"250-smtptest"}
			if !encrypted {
				lines = append(lines, "250-STARTTLS")
			}
			lines = append(lines, "250-AUTH PLAIN", "250 8BITMIME")
			reply(lines...)
		case "STARTTLS":
			if encrypted {
				reply("503 already encrypted")
				continue
			}
			reply("220 go ahead")
			tc := tls.Server(c, tlsCfg)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, r, encrypted = tc, bufio.NewReader(tc), true
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") {
				reply("504 only PLAIN")
				continue
			}
			if resp == "" {
				reply("334 ")
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				resp = strings.TrimSpace(l)
			}
			dec, err := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(dec), "\x00")
			if err != nil || len(parts) != 3 || parts[1] != s.opts.User || parts[2] != s.opts.Password {
				reply("535 authentication failed")
				continue
			}
			user = parts[1]
			reply("235 authenticated")
		case "MAIL":
			switch {
			case s.opts.Refuse:
				reply("550 refused by smtptest")
			case s.opts.User != "" && user == "":
				reply("530 authentication required")
			default:
				msg = Message{From: addr(arg), TLS: encrypted, User: user}
				reply("250 ok")
			}
		case "RCPT":
			msg.To = append(msg.To, addr(arg))
			reply("250 ok")
		case "DATA":
			reply("354 end with .")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			msg.Data = b.String()
			s.Messages <- msg
			msg = Message{}
			reply("250 queued")
		case "RSET", "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

// addr takes the address out of "FROM:<a@b>" or "TO:<a@b> PARAMS".
func addr(arg string) string {
	if i := strings.IndexByte(arg, '<'); i >= 0 {
		if j := strings.IndexByte(arg[i:], '>'); j > 0 {
			return arg[i+1 : i+j]
		}
	}
	return arg
}
