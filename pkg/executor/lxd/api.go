package lxd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/websocket"
)

// apiClient speaks LXD's REST API over its unix socket.
type apiClient struct {
	socket string
	http   *http.Client
}

func newAPIClient(socket string) *apiClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    8,
		IdleConnTimeout: 30 * time.Second,
	}
	return &apiClient{socket: socket, http: &http.Client{Transport: tr}}
}

// response is LXD's envelope of every answer (sync, async and error).
type response struct {
	Type       string          `json:"type"`
	Status     string          `json:"status"`
	StatusCode int             `json:"status_code"`
	Operation  string          `json:"operation"`
	ErrorCode  int             `json:"error_code"`
	Error      string          `json:"error"`
	Metadata   json.RawMessage `json:"metadata"`
}

// operation is the metadata of an async response and of operations/{id}/wait.
type operation struct {
	ID         string                     `json:"id"`
	Status     string                     `json:"status"`
	StatusCode int                        `json:"status_code"`
	Err        string                     `json:"err"`
	Metadata   map[string]json.RawMessage `json:"metadata"`
}

// apiError is an error answer of the API.
type apiError struct {
	Code int
	Msg  string
}

func (e *apiError) Error() string { return fmt.Sprintf("lxd: %s (%d)", e.Msg, e.Code) }

func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Code == http.StatusNotFound
}

// do sends a JSON request and decodes the envelope; error answers become
// *apiError.
func (c *apiClient) do(ctx context.Context, method, path string, body any) (*response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://lxd"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("lxd %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	var r response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("lxd %s %s: decode answer (status %s): %w", method, path, resp.Status, err)
	}
	if r.Type == "error" || resp.StatusCode >= 400 {
		code := r.ErrorCode
		if code == 0 {
			code = resp.StatusCode
		}
		return nil, &apiError{Code: code, Msg: r.Error}
	}
	return &r, nil
}

// async sends a request that answers with an operation and returns it.
func (c *apiClient) async(ctx context.Context, method, path string, body any) (*operation, error) {
	r, err := c.do(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	var op operation
	if err := json.Unmarshal(r.Metadata, &op); err != nil {
		return nil, fmt.Errorf("lxd %s %s: decode operation: %w", method, path, err)
	}
	if op.ID == "" && r.Operation != "" {
		op.ID = r.Operation[strings.LastIndex(r.Operation, "/")+1:]
	}
	return &op, nil
}

// wait waits for an operation to end and returns it; a failed operation is
// an error carrying its message.
func (c *apiClient) wait(ctx context.Context, id string) (*operation, error) {
	for {
		r, err := c.do(ctx, http.MethodGet, "/1.0/operations/"+url.PathEscape(id)+"/wait?timeout=30", nil)
		if err != nil {
			return nil, err
		}
		var op operation
		if err := json.Unmarshal(r.Metadata, &op); err != nil {
			return nil, fmt.Errorf("lxd: decode operation %s: %w", id, err)
		}
		switch op.Status {
		case "Success":
			return &op, nil
		case "Failure", "Cancelled":
			msg := op.Err
			if msg == "" {
				msg = op.Status
			}
			return &op, &apiError{Code: op.StatusCode, Msg: msg}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// run sends an async request and waits for its operation.
func (c *apiClient) run(ctx context.Context, method, path string, body any) (*operation, error) {
	op, err := c.async(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	return c.wait(ctx, op.ID)
}

// pushFile writes a file (or, with content nil, a directory) into an
// instance.
func (c *apiClient) pushFile(ctx context.Context, instance, p string, content io.Reader, mode string) error {
	typ := "file"
	if content == nil {
		typ, content = "directory", http.NoBody
	}
	u := "http://lxd/1.0/instances/" + url.PathEscape(instance) + "/files?path=" + url.QueryEscape(p)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, content)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-LXD-type", typ)
	req.Header.Set("X-LXD-mode", mode)
	req.Header.Set("X-LXD-uid", "0")
	req.Header.Set("X-LXD-gid", "0")
	req.Header.Set("X-LXD-write", "overwrite")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("lxd push %s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var r response
		_ = json.NewDecoder(resp.Body).Decode(&r)
		return fmt.Errorf("lxd push %s: %w", p, &apiError{Code: resp.StatusCode, Msg: r.Error})
	}
	return nil
}

// getFile reads a file of an instance; the returned type is LXD's X-LXD-type
// (file, directory, symlink).
func (c *apiClient) getFile(ctx context.Context, instance, p string, w io.Writer) (string, error) {
	u := "http://lxd/1.0/instances/" + url.PathEscape(instance) + "/files?path=" + url.QueryEscape(p)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("lxd get %s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return "", &apiError{Code: resp.StatusCode, Msg: "get " + p}
	}
	if w == nil {
		w = io.Discard
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return "", err
	}
	return resp.Header.Get("X-LXD-type"), nil
}

// websocket connects to one of an operation's websockets.
func (c *apiClient) websocket(ctx context.Context, opID, secret string) (*websocket.Conn, error) {
	path := "/1.0/operations/" + url.PathEscape(opID) + "/websocket?secret=" + url.QueryEscape(secret)
	cfg, err := websocket.NewConfig("ws://lxd"+path, "http://lxd/")
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, fmt.Errorf("lxd websocket: %w", err)
	}
	ws, err := websocket.NewClient(cfg, conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("lxd websocket: %w", err)
	}
	ws.PayloadType = websocket.BinaryFrame
	return ws, nil
}
