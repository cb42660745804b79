// Package client is a typed client of kkd's user API (pkg/api). It covers every
// route of the API except the agent protocol.
//
// Every method takes a context first. A non-2xx answer is returned as an
// *api.Error (errors.Is matches it against ci.ErrNotFound, ci.ErrUnauthorized,
// ...); a server that cannot be reached is reported as an *UnreachableError
// that names the URL and says how to fix it. Path segments are escaped with
// url.PathEscape, so branch names may contain '/'.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 1 << 20

// Client talks to one kkd server. It is safe for concurrent use.
type Client struct {
	base      string // scheme://host[:port][/path], without trailing slash
	token     string
	http      *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: a client without an overall
// timeout, so that followed logs can stream; bound calls with the context).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a client of the server at baseURL (e.g. http://127.0.0.1:6363)
// that authenticates with token (may be empty, e.g. to log in).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("invalid server URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("invalid server URL %q: want http://HOST:PORT or https://HOST", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("invalid server URL %q: must not have a query or fragment", baseURL)
	}
	c := &Client{
		base:      strings.TrimRight(u.String(), "/"),
		token:     token,
		http:      &http.Client{},
		userAgent: "kk",
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL returns the server URL the client talks to.
func (c *Client) BaseURL() string { return c.base }

// UnreachableError reports a server that could not be reached.
type UnreachableError struct {
	URL string // the server's base URL
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the kk server at %s: %v\n"+
		"is `kkd serve` running there? Point kk at another server with --server URL, KK_SERVER or `kk login --server URL`",
		e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// path joins escaped segments under the API prefix.
func path(segments ...string) string {
	var b strings.Builder
	b.WriteString(api.Prefix)
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

func id(n int64) string { return fmt.Sprint(n) }

// newRequest builds a request for an escaped path (from path) and a query.
func (c *Client) newRequest(ctx context.Context, method, p string, q url.Values, body io.Reader) (*http.Request, error) {
	u := c.base + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, p, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	return req, nil
}

// send performs the request and turns transport failures and non-2xx answers
// into errors. On success the caller owns the response body.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &UnreachableError{URL: c.base, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, api.DecodeError(resp.StatusCode, body)
	}
	return resp, nil
}

// do sends in (when not nil) as JSON and decodes the answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, p string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		buf, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request %s %s: %w", method, p, err)
		}
		body = bytes.NewReader(buf)
	}
	req, err := c.newRequest(ctx, method, p, q, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("decode response of %s %s from %s: %w", method, p, c.base, err)
	}
	return nil
}
