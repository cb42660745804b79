package notifier

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"time"
)

// SMTPConfig is the mail server of email notifications, from kkd's
// --smtp-url (KKD_SMTP_URL):
//
//	smtp://USER:PASSWORD@HOST:PORT?from=ADDR   STARTTLS when offered (port 587)
//	smtps://USER:PASSWORD@HOST:PORT?from=ADDR  TLS from the start (port 465)
//
// Query parameters: from (required, the sender), starttls=require (fail
// unless the server offers STARTTLS), ca=FILE (PEM certificates to trust in
// addition to the system's). AUTH PLAIN is used when a user is given; Go's
// net/smtp sends it only over TLS or to localhost.
type SMTPConfig struct {
	Host, Port     string
	ImplicitTLS    bool
	RequireTLS     bool
	User, Password string
	From           string
	TLS            *tls.Config
}

// ParseSMTPURL parses --smtp-url.
func ParseSMTPURL(raw string) (*SMTPConfig, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("--smtp-url: "+format+": use smtp[s]://USER:PASSWORD@HOST:PORT?from=ADDR", args...)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, bad("not a URL")
	}
	c := &SMTPConfig{Host: u.Hostname(), Port: u.Port()}
	switch u.Scheme {
	case "smtp":
		if c.Port == "" {
			c.Port = "587"
		}
	case "smtps":
		c.ImplicitTLS = true
		if c.Port == "" {
			c.Port = "465"
		}
	default:
		return nil, bad("scheme %q", u.Scheme)
	}
	if c.Host == "" {
		return nil, bad("no host")
	}
	if u.User != nil {
		c.User = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	q := u.Query()
	from, err := mail.ParseAddress(q.Get("from"))
	if err != nil {
		return nil, bad("from=%q is not an email address", q.Get("from"))
	}
	c.From = from.Address
	switch q.Get("starttls") {
	case "", "auto":
	case "require":
		c.RequireTLS = true
	default:
		return nil, bad("starttls=%q (use require or auto)", q.Get("starttls"))
	}
	c.TLS = &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12}
	if ca := q.Get("ca"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--smtp-url: read ca=%s: %w", ca, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--smtp-url: ca=%s holds no PEM certificate", ca)
		}
		c.TLS.RootCAs = pool
	}
	return c, nil
}

// sendEmail mails the summary to the stage's addresses.
func (n *Notifier) sendEmail(ctx context.Context, cfg any, s *Summary) (string, error) {
	var to []string
	switch v := cfg.(type) {
	case string:
		to = splitAddrs(v)
	case []any:
		for _, x := range v {
			if a, ok := x.(string); ok {
				to = append(to, splitAddrs(a)...)
			}
		}
	}
	if len(to) == 0 {
		return "", permanent(errors.New("email: no address: set notification.email to an address or a list of them"))
	}
	for _, a := range to {
		if _, err := mail.ParseAddress(a); err != nil {
			return "", permanent(fmt.Errorf("email: %q is not an email address", a))
		}
	}
	if n.cfg.SMTP == nil {
		return "", permanent(errors.New("email: kkd has no mail server: start kkd with --smtp-url smtp[s]://USER:PASSWORD@HOST:PORT?from=ADDR (KKD_SMTP_URL)"))
	}
	msg, err := buildMessage(n.cfg.SMTP.From, to, s, time.Now())
	if err != nil {
		return "", permanent(fmt.Errorf("email: %w", err))
	}
	err = n.retry(ctx, func(ctx context.Context) error { return sendMail(ctx, n.cfg.SMTP, to, msg) })
	if err != nil {
		return "", err
	}
	return "mailed to " + strings.Join(to, ", "), nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

// buildMessage renders a multipart/alternative message (text and HTML).
func buildMessage(from string, to []string, s *Summary, now time.Time) ([]byte, error) {
	var body strings.Builder
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ typ, content string }{{"text/plain", s.Text()}, {"text/html", s.HTML()}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"8bit"},
		})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write([]byte(crlf(part.content))); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	domain := "kkd"
	if _, d, ok := strings.Cut(from, "@"); ok {
		domain = d
	}
	var m strings.Builder
	hdr := [][2]string{
		{"From", from},
		{"To", strings.Join(to, ", ")},
		{"Subject", mime.QEncoding.Encode("utf-8", s.Title())},
		{"Date", now.Format(time.RFC1123Z)},
		{"Message-ID", "<" + hex.EncodeToString(id) + "@" + domain + ">"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "multipart/alternative; boundary=" + mw.Boundary()},
		{"X-KK-Run", fmt.Sprintf("%d", s.Run.ID)},
	}
	for _, h := range hdr {
		fmt.Fprintf(&m, "%s: %s\r\n", h[0], h[1])
	}
	m.WriteString("\r\n")
	m.WriteString(body.String())
	return []byte(m.String()), nil
}

func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// sendMail delivers msg over one SMTP session. SMTP 4xx replies and network
// errors are transient; 5xx replies permanent.
func sendMail(ctx context.Context, c *SMTPConfig, to []string, msg []byte) (err error) {
	addr := net.JoinHostPort(c.Host, c.Port)
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp: connect to %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Cancellation (kkd stopping) ends the session at once.
	stopClose := context.AfterFunc(ctx, func() { conn.Close() })
	defer stopClose()
	if c.ImplicitTLS {
		tc := tls.Client(conn, c.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return permanent(fmt.Errorf("smtp: TLS with %s: %w", addr, err))
		}
		conn = tc
	}
	cl, err := smtp.NewClient(conn, c.Host)
	if err != nil {
		conn.Close()
		return smtpErr("greeting", err)
	}
	defer cl.Close()
	if !c.ImplicitTLS {
		if ok, _ := cl.Extension("STARTTLS"); ok {
			if err := cl.StartTLS(c.TLS); err != nil {
				return permanent(fmt.Errorf("smtp: STARTTLS with %s: %w", addr, err))
			}
		} else if c.RequireTLS {
			return permanent(fmt.Errorf("smtp: %s does not offer STARTTLS (starttls=require)", addr))
		}
	}
	if c.User != "" {
		if ok, _ := cl.Extension("AUTH"); !ok {
			return permanent(fmt.Errorf("smtp: %s does not offer AUTH, but --smtp-url has a user", addr))
		}
		if err := cl.Auth(smtp.PlainAuth("", c.User, c.Password, c.Host)); err != nil {
			return smtpErr("AUTH PLAIN", err)
		}
	}
	if err := cl.Mail(c.From); err != nil {
		return smtpErr("MAIL FROM", err)
	}
	for _, a := range to {
		if err := cl.Rcpt(a); err != nil {
			return smtpErr("RCPT TO "+a, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return smtpErr("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return smtpErr("DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpErr("DATA", err)
	}
	_ = cl.Quit()
	return nil
}

func smtpErr(step string, err error) error {
	err = fmt.Errorf("smtp: %s: %w", step, err)
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return permanent(err)
	}
	return err
}
