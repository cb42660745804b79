package client

import (
	"context"
	"io"
	"net/http"

	"github.com/kraken-go/kk/pkg/api"
)

// ListFlowArtifacts lists the artifacts of every run of a flow, newest run first.
func (c *Client) ListFlowArtifacts(ctx context.Context, flowID int64) ([]api.Artifact, error) {
	return list[api.Artifact](ctx, c, path("flows", id(flowID), "artifacts"), nil)
}

// ListRunArtifacts lists the artifacts of a run.
func (c *Client) ListRunArtifacts(ctx context.Context, runID int64) ([]api.Artifact, error) {
	return list[api.Artifact](ctx, c, path("runs", id(runID), "artifacts"), nil)
}

// GetArtifact returns an artifact's description.
func (c *Client) GetArtifact(ctx context.Context, artifactID int64) (api.Artifact, error) {
	var out api.Artifact
	err := c.do(ctx, http.MethodGet, path("artifacts", id(artifactID)), nil, nil, &out)
	return out, err
}

// ArtifactContent opens an artifact's bytes as a stream; the caller closes it.
func (c *Client) ArtifactContent(ctx context.Context, artifactID int64) (io.ReadCloser, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path("artifacts", id(artifactID), "content"), nil, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/octet-stream")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
